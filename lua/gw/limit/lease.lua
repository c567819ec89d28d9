-- Leases: a worker charges Redis for several requests at once and admits them locally.
--
-- Charging n requests in GCRA is charging one request of n emission intervals, all or
-- nothing, so a lease is the same Redis script with bigger intervals (and works unchanged on
-- a Redis Cluster). Every admitted request was charged in Redis before it was admitted, so
-- leases never let more through than the limit; what they can cost is tokens charged but
-- not used before the lease lapses. The size is therefore a small share of what the limit
-- has left: a key far from its limit (the common case) pays one round trip per MAX requests,
-- a key near its limit leases one at a time and is exact. Pure arithmetic, no ngx.
local floor = math.floor
local min = math.min
local max = math.max

local _M = {}

_M.MAX = 64        -- requests per lease at most
_M.SHARE = 16      -- a lease takes at most 1/SHARE of what the tightest limit has left
_M.TTL = 1         -- seconds a lease's unused requests stay usable

-- The next lease size given how many requests the tightest limit had left.
function _M.size(remaining)
    return max(1, min(_M.MAX, floor(remaining / _M.SHARE)))
end

-- Per limit, after a lease of n was granted: `ahead_ms` is how far the key's TAT is ahead
-- of Redis's clock. Returns the requests left in Redis after the lease (not counting the
-- lease's own), and the seconds until the key is back to full.
function _M.after_grant(ahead_ms, interval, tolerance)
    return max(0, floor((tolerance - ahead_ms) / interval)), max(ahead_ms, 0) / 1000
end

return _M
