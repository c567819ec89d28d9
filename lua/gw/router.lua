-- Route matching: pure Lua (no ngx), so busted tests it with plain LuaJIT.
--
-- Paths are prefixes on whole segments: "/a/summary" matches "/a/summary" and "/a/summary/x"
-- but never "/a/summary@x.com"; a prefix ending in "/" matches everything below it. The
-- longest matching prefix wins; within it an exact host beats a wildcard beats "any host";
-- then the method decides, and a path that matches with no route for the method is a 405.
local ipairs = ipairs
local pairs = pairs
local type = type
local sort = table.sort
local lower = string.lower
local sub = string.sub
local byte = string.byte
local find = string.find

local SLASH = 47

local _M = {}

local HOST_EXACT, HOST_WILDCARD, HOST_ANY = 3, 2, 1

local function compile_hosts(hosts)
    if type(hosts) ~= "table" or #hosts == 0 then
        return nil
    end
    local out = {}
    for _, h in ipairs(hosts) do
        h = lower(h)
        if sub(h, 1, 2) == "*." then
            out[#out + 1] = { suffix = sub(h, 2), len = #h - 1 }
        else
            out[#out + 1] = { exact = h }
        end
    end
    return out
end

local function compile_methods(methods)
    if type(methods) ~= "table" or #methods == 0 then
        return nil
    end
    local set = {}
    for _, m in ipairs(methods) do
        set[m] = true
    end
    return set
end

-- Build a matcher from a list of route specs (as the control plane serves them): the
-- entries indexed by their prefix, so a request costs a few lookups however many routes
-- there are.
function _M.compile(routes)
    local by_prefix = {}
    local has_hosts = false
    for _, route in ipairs(routes or {}) do
        local hosts = compile_hosts(route.hosts)
        has_hosts = has_hosts or hosts ~= nil
        local methods = compile_methods(route.methods)
        for _, prefix in ipairs(route.paths or {}) do
            local list = by_prefix[prefix]
            if not list then
                list = {}
                by_prefix[prefix] = list
            end
            list[#list + 1] = {
                prefix = prefix,
                len = #prefix,
                slash = byte(prefix, #prefix) == SLASH,
                hosts = hosts,
                methods = methods,
                route = route,
            }
        end
    end
    for _, list in pairs(by_prefix) do
        sort(list, function(a, b)
            return a.route.name < b.route.name
        end)
    end
    -- has_hosts: whether any route names hosts (else the caller need not read the Host)
    return { by_prefix = by_prefix, has_hosts = has_hosts }
end

local function path_matches(e, path)
    if sub(path, 1, e.len) ~= e.prefix then
        return false
    end
    if e.slash or #path == e.len then
        return true
    end
    return byte(path, e.len + 1) == SLASH
end

-- How well a host matches an entry: HOST_EXACT, HOST_WILDCARD, HOST_ANY, or nil.
local function host_rank(e, host)
    local hosts = e.hosts
    if not hosts then
        return HOST_ANY
    end
    local best
    for i = 1, #hosts do
        local h = hosts[i]
        if h.exact then
            if h.exact == host then
                return HOST_EXACT
            end
        elseif #host > h.len and sub(host, -h.len) == h.suffix then
            best = HOST_WILDCARD
        end
    end
    return best
end

local function strip_port(host)
    local colon = find(host, ":", 1, true)
    if colon and not find(host, "]", 1, true) then
        return sub(host, 1, colon - 1)
    end
    return host
end

-- The prefixes a path can match, longest first: the whole path; then at each "/" from the
-- right, the path up to and including it (prefixes ending in "/") and up to just before it
-- (prefixes matching whole segments). A prefix ending in "/" is only ever a slash-inclusive
-- candidate and one without only a segment one, so every candidate is checked against the
-- entries it can stand for.
local function candidates(path)
    local out, n = { #path }, 1
    for i = #path, 1, -1 do
        if byte(path, i) == SLASH then
            if i ~= out[n] then
                n = n + 1
                out[n] = i
            end
            if i > 1 then
                n = n + 1
                out[n] = i - 1
            end
        end
    end
    return out, n
end

-- Returns route, or nil and "not_found" | "method_not_allowed" (with the allowed methods).
-- A trailing slash is ignored, as SparkPost's API conventions say: "/a/b/" is routed as
-- "/a/b" (the service gets the path as sent, and ignores it too).
function _M.match(matcher, host, path, method)
    host = lower(strip_port(host or ""))
    local last = #path
    if last > 1 and byte(path, last) == SLASH then
        path = sub(path, 1, last - 1)
    end
    local by_prefix = matcher.by_prefix
    local lens, n = candidates(path)
    for c = 1, n do
        local list = by_prefix[sub(path, 1, lens[c])]
        if list then
            local best_rank, chosen, allowed, matched
            for i = 1, #list do
                local e = list[i]
                if path_matches(e, path) then
                    local rank = host_rank(e, host)
                    if rank then
                        matched = true
                        if not e.methods or e.methods[method] then
                            if not best_rank or rank > best_rank then
                                best_rank, chosen = rank, e.route
                            end
                        else
                            allowed = allowed or {}
                            for m in pairs(e.methods) do
                                allowed[#allowed + 1] = m
                            end
                        end
                    end
                end
            end
            if chosen then
                return chosen
            end
            if matched then
                sort(allowed)
                return nil, "method_not_allowed", allowed
            end
        end
    end
    return nil, "not_found"
end

return _M
