-- Request ids for requests that bring no usable X-Request-Id.
--
-- nginx's $request_id draws 16 fresh bytes from OpenSSL's RAND on every request (a lock, a
-- getpid() system call and a DRBG step); on this project's bench that measured about 5 us of
-- the gateway's ~30 us of CPU per request. Here a worker draws 12 random bytes once and then
-- counts: an id is the worker's 24 hex digits followed by 8 hex digits of its counter, the
-- same 32 lower-case hex digits as $request_id. Ids stay unique across workers, reloads and
-- nodes (96 random bits per seed) and a new seed is drawn before the counter would wrap.
-- They are not secrets: a client may choose its own.
local hmac = require("gw.hmac")

local tohex = require("bit").tohex

local _M = {}

local WRAP = 0x7fffffff
local prefix
local count = WRAP

function _M.next()
    if count >= WRAP then
        prefix = hmac.random_hex(12)
        count = 0
    end
    count = count + 1
    return prefix .. tohex(count, 8)
end

-- For tests: the counter as if `n` ids had been made since the last seed.
function _M._set_count(n)
    count = n
end

return _M
