-- Revocation: every cached decision carries the revocation generation of its key at the
-- time it was cached; a revocation event bumps the key's generation in the gw_revoked dict,
-- which makes every cached decision for that key stale at once, on every worker.
--
-- Each event also carries its place in the auth service's log (`seq`): the highest one
-- heard of for a key is kept, so that an answer made from older data (an auth instance's
-- key cache that has not heard of the change yet) is recognised and asked again
-- (lua/gw/auth.lua), and each seq applied is remembered, so the log poller
-- (lua/gw/events.lua) applies what Redis already delivered only once.
local metrics = require("gw.metrics")

local ngx = ngx
local shared = ngx.shared

local _M = {}

local DICT = "gw_revoked"
local TTL = 86400
_M.SEEN_TTL = 3600

function _M.generation(key_id)
    if not key_id then
        return 0
    end
    return shared[DICT]:get("gen:" .. key_id) or 0
end

function _M.stamp(entry)
    entry.gen = _M.generation(entry.key_id)
end

function _M.valid(entry)
    return (entry.gen or 0) == _M.generation(entry.key_id)
end

-- The highest log seq heard of for the key (0: none).
function _M.known_seq(key_id)
    return shared[DICT]:get("seq:" .. key_id) or 0
end

function _M.seen(seq)
    return shared[DICT]:get("seen:" .. seq) ~= nil
end

-- Evict every cached decision of the key; `seq`, when known, is the change's place in the
-- auth service's log, and a seq already applied (by Redis, then by the poller) is not
-- applied again. Returns whether it was applied.
function _M.revoke(key_id, seq)
    local dict = shared[DICT]
    if seq then
        if _M.seen(seq) then
            return false
        end
        if seq > _M.known_seq(key_id) then
            dict:set("seq:" .. key_id, seq, TTL)
        end
        dict:set("seen:" .. seq, true, _M.SEEN_TTL)
    end
    dict:incr("gen:" .. key_id, 1, 0, TTL)
    metrics.inc("gateway_revocations_applied_total")
    return true
end

return _M
