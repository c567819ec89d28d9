-- Prometheus metrics kept in the gw_metrics shared dict (one atomic incr per observation),
-- rendered on the loopback status listener.
local ngx = ngx
local shared = ngx.shared
local concat = table.concat
local sort = table.sort
local format = string.format
local pairs = pairs
local tonumber = tonumber

local _M = {}

local DICT = "gw_metrics"
local BUCKETS = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local HELP = {
    gateway_requests_total = { "counter", "Requests by route and status" },
    gateway_request_duration_seconds = { "histogram", "Total request time" },
    gateway_upstream_duration_seconds = { "histogram", "Time spent waiting on upstreams" },
    gateway_own_duration_seconds = { "histogram", "Time spent in the gateway itself" },
    gateway_decision_cache_total = { "counter", "Decision cache lookups by result" },
    gateway_auth_errors_total = { "counter", "Failed calls to the auth service" },
    gateway_decision_reasks_total = { "counter",
        "Decisions asked again because they predated a key change this node knew of" },
    gateway_revocations_applied_total = { "counter",
        "Key changes applied to the decision cache (from Redis or the revocation log)" },
    gateway_rate_limit_total = { "counter", "Rate-limit checks by dimension and result" },
    gateway_redis_fallback_total = { "counter", "Limit checks that fell back to local" },
    gateway_response_cache_total = { "counter", "Response cache lookups by result" },
    gateway_route_table_version = { "gauge", "Version of the route table in use" },
    gateway_dns_failures_total = { "counter", "Target names that failed to resolve, by name" },
}

local function labels(l)
    if not l then
        return ""
    end
    local parts = {}
    for k, v in pairs(l) do
        parts[#parts + 1] = k .. '="' .. tostring(v):gsub('[\\"\n]', "_") .. '"'
    end
    sort(parts)
    return "{" .. concat(parts, ",") .. "}"
end
_M.labels = labels

-- Observations go to a per-worker table first and reach the shared dict in one batch per
-- second (flush), so a request costs a few Lua table updates, not a dozen dict locks.
local pending = {}

-- Counters wait per family and label string, so no string is built per call. Hot callers
-- pass a ready label string; a table is for rare ones.
local pending_inc = {}

function _M.inc(name, l, n)
    local by_label = pending_inc[name]
    if not by_label then
        by_label = {}
        pending_inc[name] = by_label
    end
    if type(l) ~= "string" then
        l = labels(l)
    end
    by_label[l] = (by_label[l] or 0) + (n or 1)
end

local series_cache = {} -- name -> label string -> { bucket keys..., sum, count }

local function series(name, base)
    local by_name = series_cache[name]
    if not by_name then
        by_name = {}
        series_cache[name] = by_name
    end
    local keys = by_name[base]
    if not keys then
        keys = {}
        for i = 1, #BUCKETS + 1 do
            keys[i] = name .. "_bucket" .. base .. "\0" .. i
        end
        keys.sum = name .. "_sum" .. base
        keys.count = name .. "_count" .. base
        by_name[base] = keys
    end
    return keys
end

-- `base` is a label string such as '{route="x"}'.
function _M.observe(name, base, seconds)
    local keys = series(name, base)
    local b = #BUCKETS + 1
    for i = 1, #BUCKETS do
        if seconds <= BUCKETS[i] then
            b = i
            break
        end
    end
    local k = keys[b]
    pending[k] = (pending[k] or 0) + 1
    k = keys.sum
    pending[k] = (pending[k] or 0) + seconds
    k = keys.count
    pending[k] = (pending[k] or 0) + 1
end

function _M.flush()
    local dict = shared[DICT]
    local batch, counters = pending, pending_inc
    pending, pending_inc = {}, {}
    for key, n in pairs(batch) do
        dict:incr(key, n, 0)
    end
    for name, by_label in pairs(counters) do
        for l, n in pairs(by_label) do
            dict:incr(name .. l, n, 0)
        end
    end
end

local function with_le(base, le)
    if base == "" then
        return '{le="' .. le .. '"}'
    end
    return base:sub(1, -2) .. ',le="' .. le .. '"}'
end

local function family_of(name)
    return (name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", ""))
end

function _M.render()
    _M.flush()
    local dict = shared[DICT]
    local keys = dict:get_keys(0)
    sort(keys)
    local lines, order = {}, {}
    local function add(family, line)
        local list = lines[family]
        if not list then
            list = {}
            lines[family] = list
            order[#order + 1] = family
        end
        list[#list + 1] = line
    end
    local hist, hist_order = {}, {} -- "name{labels}" of a histogram -> counts per bucket
    for _, key in ipairs(keys) do
        local name, idx = key:match("^(.-)%z(%d+)$")
        if name then
            if not hist[name] then
                hist[name] = {}
                hist_order[#hist_order + 1] = name
            end
            hist[name][tonumber(idx)] = dict:get(key) or 0
        else
            add(family_of(key:match("^[%w_]+")), key .. " " .. tostring(dict:get(key) or 0))
        end
    end
    for _, s in ipairs(hist_order) do
        local name, base = s:match("^([%w_]+)(.*)$")
        local family = family_of(name)
        local counts, cum = hist[s], 0
        for i = 1, #BUCKETS do
            cum = cum + (counts[i] or 0)
            add(family, name .. with_le(base, BUCKETS[i]) .. " " .. cum)
        end
        cum = cum + (counts[#BUCKETS + 1] or 0)
        add(family, name .. with_le(base, "+Inf") .. " " .. cum)
    end
    add("gateway_route_table_version",
        "gateway_route_table_version " .. (shared.gw_routes:get("version") or 0))
    local out = {}
    for _, family in ipairs(order) do
        local help = HELP[family]
        if help then
            out[#out + 1] = format("# HELP %s %s\n# TYPE %s %s", family, help[2], family,
                help[1])
        end
        out[#out + 1] = concat(lines[family], "\n")
    end
    return concat(out, "\n") .. "\n"
end

return _M
