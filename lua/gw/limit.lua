-- Rate limits: per key and per account from the decision's plan, per route (and per key or
-- account on a route) from the route, per client address for anonymous routes and failed
-- authentication. GCRA everywhere; the `redis` policy when REDIS_URL is set, else `local`.
--
-- Redis unreachable: the check falls back to the local dict (same limit, per node), logs it
-- once a second and counts it; never a 5xx, never unlimited. The first failure opens a
-- one-second circuit so a dead Redis costs one connect attempt per second per worker, not
-- one per request.
local config = require("gw.config")
local errors = require("gw.errors")
local gcra = require("gw.limit.gcra")
local metrics = require("gw.metrics")
local redis_limit = require("gw.limit.redis")
local shdict_limit = require("gw.limit.shdict")

local ngx = ngx
local log = ngx.log
local WARN = ngx.WARN
local ceil = math.ceil
local type = type
local tostring = tostring
local unpack = unpack

local _M = {}

local CIRCUIT_TTL = 1
local circuit_open_until = 0
local last_logged = 0

-- Charge every limit of the request, all or nothing. Returns a list of
-- {allowed, remaining, reset, retry} per limit, or nil, err.
local function take_all(keys, specs)
    local n = #keys
    if redis_limit.enabled() and ngx.now() >= circuit_open_until then
        local args = {}
        local params = {}
        for i = 1, n do
            local interval, tolerance = gcra.params(specs[i])
            params[i] = { interval, tolerance }
            args[2 * i - 1] = interval
            args[2 * i] = tolerance
        end
        local res, err = redis_limit.take_all(keys, args)
        if res then
            local out = {}
            for i = 1, n do
                out[i] = { gcra.decide(tonumber(res[i + 1]), 0, params[i][1], params[i][2]) }
            end
            return out
        end
        local t = ngx.now()
        circuit_open_until = t + CIRCUIT_TTL
        if t - last_logged >= CIRCUIT_TTL then
            last_logged = t
            log(WARN, "redis limits unavailable, using local limits for ", CIRCUIT_TTL,
                "s: ", err)
        end
        metrics.inc("gateway_redis_fallback_total", "")
    end
    local out = {}
    for i = 1, n do
        local allowed, remaining, reset, retry = shdict_limit.take(keys[i], specs[i])
        if allowed == nil then
            return nil, remaining
        end
        out[i] = { allowed, remaining, reset, retry }
        if not allowed then
            for j = 1, i - 1 do -- all or nothing: give back what was charged
                shdict_limit.give_back(keys[j], specs[j])
            end
            for j = i + 1, n do
                out[j] = { true, 0, 0, 0 }
            end
            break
        end
    end
    return out
end

local function valid(spec)
    return type(spec) == "table" and type(spec.limit) == "number" and spec.limit > 0
        and type(spec.window) == "number" and spec.window > 0
end

local function identity(dimension, route, decision, on_route)
    local id
    if dimension == "key" then
        id = decision and decision.key_id
    elseif dimension == "account" then
        id = decision and decision.account_id
    elseif dimension == "client_ip" then
        id = ngx.var.remote_addr
    elseif dimension == "route" then
        return "route:" .. route.name
    end
    if id == nil or id == ngx.null then
        return nil
    end
    id = dimension .. ":" .. tostring(id)
    return on_route and (route.name .. ":" .. id) or id
end

-- Checks every applicable limit. Returns true, or nil and an error value (429).
-- Sets ngx.ctx.rate_headers to the most restrictive limit's RateLimit-* headers.
function _M.check(route, decision)
    local checks = {}
    local plan = decision and decision.plan
    if type(plan) == "table" and type(plan.rate_limits) == "table" then
        for _, spec in ipairs(plan.rate_limits) do
            checks[#checks + 1] = { spec, false }
        end
    end
    if type(route.rate_limits) == "table" then
        for _, spec in ipairs(route.rate_limits) do
            checks[#checks + 1] = { spec, true }
        end
    end
    local anonymous = config.anonymous_limit
    if not decision and route.auth == "none" and type(anonymous) == "table" then
        anonymous.dimension = "client_ip"
        checks[#checks + 1] = { anonymous, false }
    end
    local keys, specs, dims = {}, {}, {}
    for i = 1, #checks do
        local spec, on_route = checks[i][1], checks[i][2]
        local dimension = spec.dimension or (on_route and "route" or "key")
        local id = valid(spec) and identity(dimension, route, decision, on_route)
        if id then
            local n = #keys + 1
            keys[n] = "rl:" .. id .. ":" .. spec.limit .. "/" .. spec.window .. "/"
                .. (spec.burst or spec.limit)
            specs[n], dims[n] = spec, dimension
        end
    end
    if #keys == 0 then
        return true
    end
    local results, err = take_all(keys, specs)
    if not results then
        log(WARN, "rate limit check failed: ", err)
        return true
    end
    local best
    for i = 1, #keys do
        local spec, dimension = specs[i], dims[i]
        local allowed, remaining, reset, retry = unpack(results[i])
        metrics.inc("gateway_rate_limit_total", '{dimension="' .. dimension
            .. (allowed and '",result="allowed"}' or '",result="rejected"}'))
        local headers = {
            ["RateLimit-Limit"] = spec.limit,
            ["RateLimit-Remaining"] = remaining,
            ["RateLimit-Reset"] = ceil(reset),
        }
        if not allowed then
            headers["Retry-After"] = ceil(retry)
            ngx.ctx.rate_headers = headers
            return nil, errors.new(429, "Too many requests",
                "Rate limit exceeded (" .. dimension .. "): " .. spec.limit .. " per "
                .. spec.window .. "s; retry after " .. ceil(retry) .. "s", "1429", headers)
        end
        if not best or remaining < best["RateLimit-Remaining"] then
            best = headers
        end
    end
    ngx.ctx.rate_headers = best
    return true
end

-- Brute-force shield: failed authentication counted per client address.
function _M.failed_auth_blocked()
    local spec = config.failed_auth_limit
    if not valid(spec) then
        return false
    end
    local key = "fa:" .. ngx.var.remote_addr
    local dict = ngx.shared.gw_limits
    local interval, tolerance = gcra.params(spec)
    local tat = dict:get(key)
    return tat ~= nil and tat + interval - ngx.now() * 1000 > tolerance
end

function _M.count_failed_auth()
    local spec = config.failed_auth_limit
    if valid(spec) then
        shdict_limit.take("fa:" .. ngx.var.remote_addr, spec)
    end
end

function _M.init_worker()
    redis_limit.init()
end

return _M
