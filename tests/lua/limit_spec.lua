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
