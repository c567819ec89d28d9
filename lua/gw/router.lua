-- Route matching: pure Lua (no ngx), so busted tests it with plain LuaJIT.
--
-- Paths are prefixes on whole segments: "/a/summary" matches "/a/summary" and "/a/summary/x"
-- but never "/a/summary@x.com"; a prefix ending in "/" matches everything below it. The
-- longest matching prefix wins; within it an exact host beats a wildcard beats "any host";
-- then the method decides, and a path that matches with no route for the method is a 405.
local ipairs = ipairs
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

-- Build a matcher from a list of route specs (as the control plane serves them).
function _M.compile(routes)
    local entries = {}
    for _, route in ipairs(routes or {}) do
        local hosts = compile_hosts(route.hosts)
        local methods = compile_methods(route.methods)
        for _, prefix in ipairs(route.paths or {}) do
            entries[#entries + 1] = {
                prefix = prefix,
                len = #prefix,
                slash = byte(prefix, #prefix) == SLASH,
                hosts = hosts,
                methods = methods,
                route = route,
            }
        end
    end
    sort(entries, function(a, b)
        if a.len ~= b.len then
            return a.len > b.len
        end
        return a.route.name < b.route.name
    end)
    return { entries = entries }
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

-- Returns route, or nil and "not_found" | "method_not_allowed" (with the allowed methods).
function _M.match(matcher, host, path, method)
    host = lower(strip_port(host or ""))
    local entries = matcher.entries
    local best_len, best_rank, chosen
    local allowed
    for i = 1, #entries do
        local e = entries[i]
        if best_len and e.len < best_len then
            break
        end
        if path_matches(e, path) then
            local rank = host_rank(e, host)
            if rank then
                best_len = e.len
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
    if best_len then
        sort(allowed)
        return nil, "method_not_allowed", allowed
    end
    return nil, "not_found"
end

return _M
