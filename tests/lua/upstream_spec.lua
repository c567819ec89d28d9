-- Targets by name: the resolver's choice of addresses, and how a route's targets become
-- peers. Plain LuaJIT: `busted --lua=luajit -m 'lua/?.lua' tests/lua`.
local getaddrinfo = require("gw.getaddrinfo")
local upstream = require("gw.upstream")

describe("getaddrinfo", function()
    it("resolves a name from /etc/hosts through the C library", function()
        local ok, addrs = getaddrinfo.resolve("localhost")
        assert.is_true(ok)
        assert.is_truthy(addrs:find("127.0.0.1", 1, true))
    end)

    it("says why a name does not resolve", function()
        local ok, why = getaddrinfo.resolve("nowhere.invalid")
        assert.is_false(ok)
        assert.is_truthy(#why > 0)
    end)

    it("prefers IPv4, sorted and without repeats, and takes IPv6 when there is no IPv4", function()
        assert.same({ "10.0.0.1", "10.0.0.2" },
            getaddrinfo.choose({ "10.0.0.2", "10.0.0.1", "10.0.0.2" }, { "::1" }))
        assert.same({ "::1", "fd00::1" }, getaddrinfo.choose({}, { "fd00::1", "::1" }))
        assert.same({}, getaddrinfo.choose({}, {}))
    end)
end)

describe("upstream.compile", function()
    local known = {
        ["svc.internal"] = { "10.0.0.1", "10.0.0.2" },
        ["six.internal"] = { "fd00::7" },
    }
    local function addresses_of(name)
        return known[name]
    end
    local function compile(targets)
        return upstream.compile({ upstream = { targets = targets } }, addresses_of)
    end

    it("makes one peer per address of a name, each with its own id", function()
        local up = compile({ "svc.internal:8200", "192.0.2.7:81", "[::1]:82" })
        local peers = {}
        for i, t in ipairs(up.targets) do
            peers[i] = t.id .. " -> " .. t.host .. ":" .. t.port
        end
        assert.same({
            "svc.internal:8200@10.0.0.1 -> 10.0.0.1:8200",
            "svc.internal:8200@10.0.0.2 -> 10.0.0.2:8200",
            "192.0.2.7:81 -> 192.0.2.7:81",
            "[::1]:82 -> [::1]:82",
        }, peers)
        assert.is_nil(up.unresolved)
    end)

    it("brackets the IPv6 addresses of a name, as nginx takes them", function()
        local up = compile({ "six.internal:80" })
        assert.equal("[fd00::7]", up.targets[1].host)
        assert.equal("six.internal:80@[fd00::7]", up.targets[1].id)
    end)

    it("skips a name without addresses while another target has some", function()
        local up = compile({ "gone.internal:80", "svc.internal:80" })
        assert.equal(2, #up.targets)
        assert.is_nil(up.unresolved)
    end)

    it("names the unresolved hosts when no target has an address", function()
        local up = compile({ "gone.internal:80", "lost.internal:81" })
        assert.equal(0, #up.targets)
        assert.equal("gone.internal, lost.internal", up.unresolved)
    end)

    it("tells addresses from names", function()
        assert.is_true(upstream.is_address("10.1.2.3"))
        assert.is_true(upstream.is_address("fd00::1"))
        assert.is_true(upstream.is_address("[fd00::1]"))
        assert.is_false(upstream.is_address("svc.internal"))
        assert.is_false(upstream.is_address("10.1.2.3.example"))
    end)
end)
