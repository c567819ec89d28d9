-- gw.request_id: unique 32-hex-digit ids from a per-worker random seed and a counter.
local request_id = require("gw.request_id")

describe("request ids", function()
    it("look like nginx's $request_id: 32 lower-case hex digits", function()
        for _ = 1, 100 do
            local id = request_id.next()
            assert.are.equal(32, #id)
            assert.is_truthy(id:match("^[0-9a-f]+$"))
        end
    end)

    it("never repeat within a seed", function()
        local seen = {}
        for _ = 1, 100000 do
            local id = request_id.next()
            assert.is_nil(seen[id])
            seen[id] = true
        end
    end)

    it("start from a different random prefix in each worker", function()
        package.loaded["gw.request_id"] = nil
        local other = require("gw.request_id")
        package.loaded["gw.request_id"] = request_id
        assert.are_not.equal(request_id.next():sub(1, 24), other.next():sub(1, 24))
    end)

    it("draw a new random prefix before the counter would wrap", function()
        local before = request_id.next()
        request_id._set_count(0x7fffffff)
        local after = request_id.next()
        assert.are_not.equal(before:sub(1, 24), after:sub(1, 24))
        assert.are.equal("00000001", after:sub(25))
    end)
end)
