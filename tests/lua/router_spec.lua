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
        -- a trailing slash is ignored (SparkPost's API conventions)
        { "h", "/api/v1/suppression-list/", "GET", "search" },
        { "h", "/api/v1/suppression-list/", "PUT", "search" },
        { "h", "/api/v1/suppression-list/jane@example.com/", "GET", "lookup" },
        { "h", "/api/v1/suppression-list/summary/", "GET", "summary" },
        { "h", "/api/v1/api-keys/", "POST", "keys" },
        { "h", "/", "GET", "not_found" },
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

-- The rule itself, written the slow obvious way: every (prefix, route) pair checked, the
-- longest matching prefix kept. The indexed router must answer exactly as this does.
local function reference(routes, host, path, method)
    host = host:lower():gsub(":%d+$", "")
    if #path > 1 and path:sub(-1) == "/" then
        path = path:sub(1, -2) -- a trailing slash is ignored
    end
    local best_len, best_rank, chosen, allowed = -1, nil, nil, nil
    local sorted = {}
    for _, r in ipairs(routes) do
        sorted[#sorted + 1] = r
    end
    table.sort(sorted, function(a, b) return a.name < b.name end)
    for _, r in ipairs(sorted) do
        for _, p in ipairs(r.paths) do
            local ok = path:sub(1, #p) == p and (p:sub(-1) == "/" or #path == #p
                or path:sub(#p + 1, #p + 1) == "/")
            local rank
            if ok then
                if not r.hosts then
                    rank = 1
                else
                    for _, h in ipairs(r.hosts) do
                        if h == host then
                            rank = 3
                        elseif h:sub(1, 2) == "*." and #host > #h - 1
                            and host:sub(-(#h - 1)) == h:sub(2) then
                            rank = math.max(rank or 0, 2)
                        end
                    end
                end
            end
            if rank and #p >= best_len then
                if #p > best_len then
                    best_len, best_rank, chosen, allowed = #p, nil, nil, nil
                end
                local takes = not r.methods
                for _, meth in ipairs(r.methods or {}) do
                    takes = takes or meth == method
                end
                if takes then
                    if not best_rank or rank > best_rank then
                        best_rank, chosen = rank, r.name
                    end
                else
                    allowed = true
                end
            end
        end
    end
    if chosen then
        return chosen
    end
    return allowed and "method_not_allowed" or "not_found"
end

describe("router.match against the rule", function()
    it("agrees with a linear reading of the rule on random tables and paths", function()
        math.randomseed(20261128)
        local words = { "a", "b", "ab", "api", "v1", "x@y.z", "" }
        local function rand_path(max_segments)
            local parts = {}
            for i = 1, math.random(1, max_segments) do
                parts[i] = words[math.random(#words)]
            end
            local p = "/" .. table.concat(parts, "/")
            if math.random() < 0.3 then
                p = p .. "/"
            end
            return p
        end
        local methods = { "GET", "PUT", "POST" }
        local hosts = { "h.example.com", "other.org" }
        for _ = 1, 200 do
            local routes = {}
            for i = 1, math.random(1, 12) do
                local r = { name = "r" .. i, paths = { rand_path(3) } }
                if math.random() < 0.5 then
                    r.methods = { methods[math.random(#methods)] }
                end
                local roll = math.random()
                if roll < 0.2 then
                    r.hosts = { "*.example.com" }
                elseif roll < 0.4 then
                    r.hosts = { hosts[math.random(#hosts)] }
                end
                routes[i] = r
            end
            local matcher = router.compile(routes)
            for _ = 1, 30 do
                local host = hosts[math.random(#hosts)]
                local path, method = rand_path(4), methods[math.random(#methods)]
                local got, err = router.match(matcher, host, path, method)
                assert.are.equal(reference(routes, host, path, method), got and got.name or err,
                    method .. " " .. host .. path)
            end
        end
    end)
end)
