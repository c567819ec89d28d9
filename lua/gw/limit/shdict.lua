-- GCRA in a shared dict, shared by the workers of one node.
--
-- incr is atomic, but GCRA's max(TAT, now) is not an incr. Instead the key's TTL is kept at
-- TAT - now, so an idle key expires exactly when its TAT falls behind the clock and the next
-- incr starts it afresh at now + interval. Not atomic: two workers racing on expire() may let
-- the key expire up to one interval early, which can admit one extra request per race; the
-- accuracy tests bound the effect (within 5% under 200 concurrent clients).
local gcra = require("gw.limit.gcra")

local ngx = ngx
local shared = ngx.shared
local now_ms = function()
    return ngx.now() * 1000
end

local _M = {}

local DICT = "gw_limits"

function _M.take(key, spec)
    local dict = shared[DICT]
    local interval, tolerance = gcra.params(spec)
    local now = now_ms()
    local tat, err = dict:incr(key, interval, now, (interval + 1) / 1000)
    if not tat then
        return nil, "gw_limits dict: " .. tostring(err)
    end
    local allowed, remaining, reset, retry = gcra.decide(tat, now, interval, tolerance)
    if allowed then
        dict:expire(key, (tat - now) / 1000 + 0.001)
    else
        dict:incr(key, -interval)
    end
    return allowed, remaining, reset, retry
end

-- Undo one charge (all-or-nothing checks whose later limit refused).
function _M.give_back(key, spec)
    local interval = gcra.params(spec)
    shared[DICT]:incr(key, -interval)
end

return _M
