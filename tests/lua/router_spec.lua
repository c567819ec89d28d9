-- Pure route matching, no nginx: run with `busted --lua=luajit -m 'lua/?.lua' tests/lua`.
local router = require("gw.router")

local function route(name, paths, methods, hosts)
    return { name = name, paths = paths, methods = methods, hosts = hosts }
end

local m = router.compile({
    route("lookup", { "/api/v1/suppression-list/" }, { "GET", "HEAD" }),
    route("edit", { "/api/v1/suppression-list/" }, { "PUT", "DELETE" }),
    route("search", { "/api/v1/suppression-list" }),
    route("summary", { "/api/v1/suppression-list/summary" }, { "GET" }),
    route("keys", { "/api/v1/api-keys" }),
    route("wild", { "/hosted" }, nil, { "*.example.com" }),
    route("exact", { "/hosted" }, nil, { "api.example.com" }),
})

describe("router.match", function()
    local cases = {
        -- host, path, method, expected route or error
        { "h", "/api/v1/suppression-list/jane@example.com", "GET", "lookup" },
        { "h", "/api/v1/suppression-list/jane@example.com", "PUT", "edit" },
        { "h", "/api/v1/suppression-list", "GET", "search" },
        { "h", "/api/v1/suppression-list", "PUT", "search" },
        { "h", "/api/v1/suppression-list/summary", "GET", "summary" },
        { "h", "/api/v1/suppression-list/summary/x", "GET", "summary" },
        -- a recipient that starts like a fixed path is still a recipient
        { "h", "/api/v1/suppression-list/summary@example.com", "GET", "lookup" },
        { "h", "/api/v1/suppression-list/summary", "PUT", "method_not_allowed" },
        { "h", "/api/v1/suppression-list/x", "POST", "method_not_allowed" },
        { "h", "/api/v1/suppression-listing", "GET", "not_found" },
        { "h", "/api/v1/api-keys/abc", "DELETE", "keys" },
        { "h", "/nothing", "GET", "not_found" },
        { "api.example.com", "/hosted", "GET", "exact" },
        { "API.Example.com:8080", "/hosted", "GET", "exact" },
        { "eu.example.com", "/hosted", "GET", "wild" },
        { "example.com", "/hosted", "GET", "not_found" },
        { "evil-example.com", "/hosted", "GET", "not_found" },
    }
    for _, c in ipairs(cases) do
        it(c[3] .. " " .. c[1] .. c[2] .. " -> " .. c[4], function()
            local r, err = router.match(m, c[1], c[2], c[3])
            assert.are.equal(c[4], r and r.name or err)
        end)
    end

    it("lists the allowed methods for a 405", function()
        local _, err, allowed = router.match(m, "h", "/api/v1/suppression-list/x", "POST")
        assert.are.equal("method_not_allowed", err)
        assert.are.same({ "DELETE", "GET", "HEAD", "PUT" }, allowed)
    end)

    it("matches nothing in an empty table", function()
        local _, err = router.match(router.compile({}), "h", "/", "GET")
        assert.are.equal("not_found", err)
    end)
end)
