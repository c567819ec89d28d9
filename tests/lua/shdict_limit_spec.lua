-- gw.limit.shdict.take_all against a fake shared dict (the ngx boundary): all or nothing,
-- answered like the Redis script so the lease logic can use either.
describe("local limits, all or nothing", function()
    local store, clock, take_all

    setup(function()
        local dict = {}
        function dict.incr(_, key, by, init)
            local v = store[key]
            if v == nil then
                if init == nil then
                    return nil, "not found"
                end
                v = init
            end
            store[key] = v + by
            return store[key]
        end
        function dict.set(_, key, value)
            store[key] = value
            return true
        end
        _G.ngx = { shared = { gw_limits = dict }, now = function() return clock end }
        package.loaded["gw.limit.shdict"] = nil
        take_all = require("gw.limit.shdict").take_all
    end)

    teardown(function()
        _G.ngx = nil
        package.loaded["gw.limit.shdict"] = nil
    end)

    before_each(function()
        store, clock = {}, 1000 -- seconds
    end)

    it("charges every key and says how far each is ahead", function()
        -- key a: 10 ms per request, burst 100 ms; key b: 1 ms, burst 50 ms; a lease of 4
        local res = take_all({ "a", "b" }, { 40, 100, 4, 50 })
        assert.are.same({ 1, 40, 4 }, res)
        assert.are.equal(1000 * 1000 + 40, store.a)
        assert.are.equal(1000 * 1000 + 4, store.b)
    end)

    it("refuses without charging anything when one key is over", function()
        store.a, store.b = 1000 * 1000 + 80, 1000 * 1000 + 48
        local res = take_all({ "a", "b", "c" }, { 10, 100, 4, 50, 1, 10 })
        assert.are.equal(0, res[1])
        assert.are.equal(90, res[2])
        assert.are.equal(52, res[3]) -- the key that refused: over its 50 ms tolerance
        assert.are.equal(0, res[4])  -- not looked at
        assert.are.equal(1000 * 1000 + 80, store.a) -- given back
        assert.are.equal(1000 * 1000 + 48, store.b)
        assert.is_nil(store.c)
    end)

    it("starts an idle key afresh from now", function()
        store.a = 10 -- long in the past
        local res = take_all({ "a" }, { 5, 100 })
        assert.are.same({ 1, 5 }, res)
        assert.are.equal(1000 * 1000 + 5, store.a)
    end)
end)
