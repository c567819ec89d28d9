-- GCRA (the generic cell rate algorithm) arithmetic, pure: no ngx, no store.
--
-- A limit of `limit` requests per `window` seconds with a `burst` allows `burst` requests at
-- once and then one every `window / limit` seconds. The state is one number per key, the
-- theoretical arrival time (TAT) in milliseconds. Each request adds one emission interval;
-- it is allowed while TAT - now stays within the burst tolerance.
local floor = math.floor
local max = math.max

local _M = {}

-- Emission interval and tolerance (ms) for a limit spec {limit, window, burst}.
function _M.params(spec)
    local interval = spec.window * 1000 / spec.limit
    local burst = spec.burst or spec.limit
    if burst < 1 then
        burst = 1
    end
    return interval, interval * burst
end

-- After adding one interval, TAT is `tat`; decide at `now` (ms).
-- Returns allowed, remaining, reset (seconds until the bucket is full), retry_after (s).
function _M.decide(tat, now, interval, tolerance)
    local ahead = tat - now
    if ahead > tolerance then
        -- Rejected: the caller undoes its increment. Next slot opens when TAT-interval
        -- falls back to now + tolerance - interval.
        local retry = (ahead - tolerance) / 1000
        local before = ahead - interval
        return false, 0, max(before, 0) / 1000, retry
    end
    local remaining = floor((tolerance - ahead) / interval)
    return true, remaining, max(ahead, 0) / 1000, 0
end

return _M
