-- Revocation: every cached decision carries the revocation generation of its key at the
-- time it was cached; a revocation event bumps the key's generation in the gw_revoked dict,
-- which makes every cached decision for that key stale at once, on every worker.
local ngx = ngx
local shared = ngx.shared

local _M = {}

local DICT = "gw_revoked"
local TTL = 86400

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

function _M.revoke(key_id)
    return shared[DICT]:incr("gen:" .. key_id, 1, 0, TTL)
end

return _M
