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

-- One charge of `interval` ms on `key` at `now`: the key's new TAT, or nil and an error.
local function charge(dict, key, interval, now)
    local tat, err = dict:incr(key, interval, now)
    if not tat then
        return nil, "gw_limits dict: " .. tostring(err)
    end
    if tat - interval < now then -- idle key: start afresh from now
        tat = now + interval
        dict:set(key, tat)
    end
    return tat
end

-- Undo the charges of keys[1..n] (args as in take_all).
local function give_back(dict, keys, args, n)
    for j = 1, n do
        dict:incr(keys[j], -args[2 * j - 1])
    end
end

-- interval, tolerance: gcra.params of the limit (ms).
function _M.take(key, interval, tolerance)
    local dict = shared[DICT]
    local now = ngx.now() * 1000
    local tat, err = charge(dict, key, interval, now)
    if not tat then
        return nil, err
    end
    local allowed, remaining, reset, retry = gcra.decide(tat, now, interval, tolerance)
    if not allowed then
        dict:incr(key, -interval)
    end
    return allowed, remaining, reset, retry
end

-- Every limit of one request (or lease) at once, all or nothing, answering like the Redis
-- script (gw.limit.redis) so the same lease logic serves both policies. args: interval,
-- tolerance per key (ms). Returns {allowed (0/1), ahead_ms per key...}; when a key refuses,
-- what was charged is given back and the keys after it are not looked at (their ahead_ms is
-- 0: they did not refuse). Or nil, err.
function _M.take_all(keys, args)
    local dict = shared[DICT]
    local now = ngx.now() * 1000
    local out = { 1 }
    for i = 1, #keys do
        local tat, err = charge(dict, keys[i], args[2 * i - 1], now)
        if not tat then
            give_back(dict, keys, args, i - 1)
            return nil, err
        end
        out[i + 1] = tat - now
        if tat - now > args[2 * i] then
            give_back(dict, keys, args, i)
            for j = i + 1, #keys do
                out[j + 1] = 0
            end
            out[1] = 0
            return out
        end
    end
    return out
end

return _M
