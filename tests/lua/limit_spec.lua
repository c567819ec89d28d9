-- GCRA arithmetic and Redis URL parsing, pure.
local gcra = require("gw.limit.gcra")

describe("gcra", function()
    it("lets a burst through, then one per interval", function()
        local spec = { limit = 10, window = 1, burst = 3 }
        local interval, tolerance = gcra.params(spec)
        assert.are.equal(100, interval)
        local tat, now, allowed = 0, 0, 0
        for _ = 1, 10 do
            local new = math.max(tat, now) + interval
            local ok = gcra.decide(new, now, interval, tolerance)
            if ok then
                tat = new
                allowed = allowed + 1
            end
        end
        assert.are.equal(3, allowed)
        -- 100 ms later exactly one more fits
        now = 100
        assert.is_true((gcra.decide(math.max(tat, now) + interval, now, interval, tolerance)))
    end)

    it("reports remaining and retry-after", function()
        local interval, tolerance = gcra.params({ limit = 2, window = 1, burst = 2 })
        local ok, remaining = gcra.decide(500, 0, interval, tolerance)
        assert.is_true(ok)
        assert.are.equal(1, remaining)
        local rejected, _, _, retry = gcra.decide(1500, 0, interval, tolerance)
        assert.is_false(rejected)
        assert.are.equal(0.5, retry)
    end)

    it("defaults the burst to the limit", function()
        local interval, tolerance = gcra.params({ limit = 5, window = 10 })
        assert.are.equal(2000, interval)
        assert.are.equal(10000, tolerance)
    end)
end)

describe("lease", function()
    local lease = require("gw.limit.lease")

    it("leases one at a time near the limit and up to MAX far from it", function()
        assert.are.equal(1, lease.size(0))
        assert.are.equal(1, lease.size(lease.SHARE * 2 - 1))
        assert.are.equal(2, lease.size(lease.SHARE * 2))
        assert.are.equal(lease.MAX, lease.size(1e9))
    end)

    it("never takes more than a share of what is left", function()
        for remaining = 0, 5000, 7 do
            local n = lease.size(remaining)
            assert.is_true(n == 1 or n * lease.SHARE <= remaining)
        end
    end)

    it("reports what Redis has left after a grant", function()
        -- limit 10/s, burst 10: interval 100 ms, tolerance 1000 ms; TAT 300 ms ahead
        local rem, reset = lease.after_grant(300, 100, 1000)
        assert.are.equal(7, rem)
        assert.are.equal(0.3, reset)
        -- never below zero left, never a negative reset
        assert.are.same({ 0, 1.05 }, { lease.after_grant(1050, 100, 1000) })
        assert.are.same({ 10, 0 }, { lease.after_grant(-20, 100, 1000) })
    end)
end)
