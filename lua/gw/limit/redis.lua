-- GCRA in Redis: one Lua script, run by EVALSHA (loaded on NOSCRIPT), atomic per key, so
-- the limit holds across every gateway node. The clock is Redis's own (TIME), so nodes with
-- skewed clocks still agree.
local config = require("gw.config")

local ngx = ngx
local tonumber = tonumber
local find = string.find
local match = string.match
local unpack = unpack

local _M = {}

-- Every limit of one request in one round trip, all or nothing: if any limit would be
-- exceeded none is charged. KEYS: the limit keys; ARGV: interval, tolerance per key (ms).
-- Returns {allowed (0/1), ahead_ms per key...}.
local SCRIPT = [[
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local out, news, ok = {}, {}, 1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new = tat + interval
  news[i] = new
  out[i + 1] = tostring(new - now)
  if new - now > tolerance then ok = 0 end
end
if ok == 1 then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%.3f', news[i]), 'PX',
               math.ceil(news[i] - now) + 1)
  end
end
out[1] = ok
return out
]]
local sha

local redis_mod

local function sha1_hex(s)
    return require("gw.hmac").to_hex(ngx.sha1_bin(s))
end

function _M.parse(url)
    local rest = match(url or "", "^rediss?://(.+)$")
    if not rest then
        return nil
    end
    local password
    local userinfo, hostpart = match(rest, "^([^@/]*)@(.+)$")
    if userinfo then
        password = match(userinfo, ":(.*)$") or userinfo
        rest = hostpart
    end
    local host, port, db = match(rest, "^([^:/]+):?(%d*)/?(%d*)")
    if not host then
        return nil
    end
    return { host = host, port = tonumber(port) or 6379, db = tonumber(db),
             password = password ~= "" and password or nil }
end

local target

function _M.init()
    if not config.redis_url or config.redis_url == ngx.null then
        return false
    end
    target = _M.parse(config.redis_url)
    redis_mod = require(config.redis_module)
    sha = sha1_hex(SCRIPT)
    return target ~= nil
end

function _M.enabled()
    return target ~= nil
end

-- Pooled connections outlive a Redis restart and then fail one by one. A failure moves the
-- worker to a new pool name, so every connection after it is fresh.
local epoch = 0

function _M.discard_pool()
    epoch = epoch + 1
end

function _M.connect(timeout)
    local red = redis_mod:new()
    red:set_timeouts(timeout or 100, 200, 200)
    local ok, err = red:connect(target.host, target.port,
        { pool = "gw_redis:" .. target.host .. ":" .. target.port .. ":" .. epoch })
    if not ok then
        return nil, err
    end
    if red:get_reused_times() == 0 then
        if target.password then
            ok, err = red:auth(target.password)
            if not ok then
                return nil, err
            end
        end
        if target.db and target.db ~= 0 then
            red:select(target.db)
        end
    end
    return red
end

-- keys: list of limit keys; args: interval, tolerance for each, flattened.
-- Returns the script's answer {allowed, ahead_ms...} or nil, err.
function _M.take_all(keys, args)
    local red, err = _M.connect()
    if not red then
        _M.discard_pool()
        return nil, err
    end
    local n = #keys
    local flat = { sha, n }
    for i = 1, n do
        flat[i + 2] = keys[i]
    end
    for i = 1, #args do
        flat[n + 2 + i] = args[i]
    end
    local res
    res, err = red:evalsha(unpack(flat))
    if not res and err and find(err, "NOSCRIPT", 1, true) then
        flat[1] = SCRIPT
        res, err = red:eval(unpack(flat))
    end
    if not res then
        red:close()
        _M.discard_pool()
        return nil, err
    end
    red:set_keepalive(60000, 256)
    return res
end

return _M
