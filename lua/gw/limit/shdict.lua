-- GCRA in a shared dict, shared by the workers of one node.
--
-- The key holds the theoretical arrival time (TAT, ms). A request is one atomic incr by the
-- emission interval: on a busy key that is the whole cost. When the key has been idle (its
-- TAT fell behind the clock) the incr lands in the past and the key is set to now +
-- interval instead. That set is not atomic with the incr: requests racing right after an
-- idle spell may each restart the key, so a few may pass that an exact GCRA would count;
-- a saturated key, the case a limit is for, never takes that path. Keys carry no TTL; the
-- dict's own LRU eviction drops idle ones, whose state no longer matters.
local gcra = require("gw.limit.gcra")

local ngx = ngx
local shared = ngx.shared

local _M = {}

local DICT = "gw_limits"

-- interval, tolerance: gcra.params of the limit (ms).
function _M.take(key, interval, tolerance)
    local dict = shared[DICT]
    local now = ngx.now() * 1000
    local tat, err = dict:incr(key, interval, now)
    if not tat then
        return nil, "gw_limits dict: " .. tostring(err)
    end
    if tat - interval < now then -- idle key: start afresh from now
        tat = now + interval
        dict:set(key, tat)
    end
    local allowed, remaining, reset, retry = gcra.decide(tat, now, interval, tolerance)
    if not allowed then
        dict:incr(key, -interval)
    end
    return allowed, remaining, reset, retry
end

-- Undo one charge (all-or-nothing checks whose later limit refused).
function _M.give_back(key, interval)
    shared[DICT]:incr(key, -interval)
end

return _M
