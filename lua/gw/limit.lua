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
local lease = require("gw.limit.lease")
local metrics = require("gw.metrics")
local redis_limit = require("gw.limit.redis")
local shdict_limit = require("gw.limit.shdict")

local ngx = ngx
local log = ngx.log
local WARN = ngx.WARN
local ceil = math.ceil
local type = type
local tostring = tostring
local max = math.max
local concat = table.concat
local now = ngx.now

local _M = {}

local CIRCUIT_TTL = 1
local circuit_open_until = 0
local last_logged = 0

-- Where limits are charged: the node's shared dict (`local` policy) or Redis. Both answer
-- take_all alike and both are charged through leases (gw.limit.lease): a worker charges
-- several requests at once and admits them itself, so a key far from its limit costs one
-- charge per lease, not two shared-dict writes per request; near its limit a key leases one
-- request at a time and stays exact. Each store keeps its own leases: plan id -> what this
-- worker holds.
local STORES = {
    ["local"] = { take_all = shdict_limit.take_all, leases = {}, count = 0 },
    redis = { take_all = redis_limit.take_all, leases = {}, count = 0 },
}
local MAX_LEASES = 20000

local function remember_lease(store, id, l)
    if not store.leases[id] then
        store.count = store.count + 1
        if store.count > MAX_LEASES then -- plans come and go with keys: start afresh
            store.leases, store.count = {}, 1
        end
    end
    store.leases[id] = l
end

local function charge(store, plan, n)
    local args = plan.args1
    if n > 1 then
        args = {}
        for i = 1, plan.n do
            args[2 * i - 1] = plan.intervals[i] * n
            args[2 * i] = plan.tolerances[i]
        end
    end
    return store.take_all(plan.keys, args)
end

-- Returns allowed, index of the limit to report, remaining, reset (s), retry (s); or nil, err.
local function take_leased(plan, store)
    local t = now()
    local held = store.leases[plan.id]
    if held and t < held.expires then
        if held.denied then
            return false, held.idx, 0, held.reset, held.expires - t
        end
        if held.left > 0 then
            held.left = held.left - 1
            return true, held.idx, held.rem + held.left, max(held.reset - (t - held.t), 0), 0
        end
    end
    local n = held and held.next_n or 1
    local res, err = charge(store, plan, n)
    if res and tonumber(res[1]) ~= 1 and n > 1 then -- too big a lease near the limit: one
        n = 1
        res, err = charge(store, plan, 1)
    end
    if not res then
        return nil, err
    end
    t = now()
    local intervals, tolerances = plan.intervals, plan.tolerances
    if tonumber(res[1]) == 1 then
        local best, best_rem, best_reset
        for i = 1, plan.n do
            local rem, reset = lease.after_grant(tonumber(res[i + 1]), intervals[i],
                tolerances[i])
            if not best or rem < best_rem then
                best, best_rem, best_reset = i, rem, reset
            end
        end
        -- Requests charged by another request of this worker in the meantime stay usable.
        local left = n - 1
        held = store.leases[plan.id]
        if held and not held.denied and t < held.expires then
            left = left + held.left
        end
        remember_lease(store, plan.id, { t = t, expires = t + lease.TTL, left = left,
            rem = best_rem, reset = best_reset, idx = best, next_n = lease.size(best_rem) })
        return true, best, best_rem + left, best_reset, 0
    end
    -- Refused: until the first slot opens this worker answers 429 without asking again.
    local idx, reset_b, retry_max = 1, 0, 0
    for i = 1, plan.n do
        local allowed, _, reset, retry = gcra.decide(tonumber(res[i + 1]), 0, intervals[i],
            tolerances[i])
        if not allowed and retry > retry_max then
            idx, reset_b, retry_max = i, reset, retry
        end
    end
    remember_lease(store, plan.id, { denied = true, t = t, expires = t + retry_max,
        idx = idx, reset = reset_b, next_n = 1 })
    return false, idx, 0, reset_b, retry_max
end

-- Charge every limit of the plan, all or nothing.
local function take(plan)
    if redis_limit.enabled() and now() >= circuit_open_until then
        local allowed, idx, remaining, reset, retry = take_leased(plan, STORES.redis)
        if allowed ~= nil then
            return allowed, idx, remaining, reset, retry
        end
        local t = now()
        circuit_open_until = t + CIRCUIT_TTL
        if t - last_logged >= CIRCUIT_TTL then
            last_logged = t
            log(WARN, "redis limits unavailable, using local limits for ", CIRCUIT_TTL,
                "s: ", idx)
        end
        metrics.inc("gateway_redis_fallback_total", "")
    end
    return take_leased(plan, STORES["local"])
end

local function valid(spec)
    return type(spec) == "table" and type(spec.limit) == "number" and spec.limit > 0
        and type(spec.window) == "number" and spec.window > 0
end

-- The identity a limit counts, or nil (nothing to count); the second value says whether it
-- depends on the client address (then the plan is not kept with the decision).
local function identity(dimension, route, decision, on_route)
    local id
    local per_address = false
    if dimension == "key" then
        id = decision and decision.key_id
    elseif dimension == "account" then
        id = decision and decision.account_id
    elseif dimension == "client_ip" then
        id = ngx.var.remote_addr
        per_address = true
    elseif dimension == "route" then
        return "route:" .. route.name, false
    end
    if id == nil or id == ngx.null then
        return nil, false
    end
    id = dimension .. ":" .. tostring(id)
    return on_route and (route.name .. ":" .. id) or id, per_address
end

-- A plan: every limit that applies to (route, decision), with its key and GCRA parameters
-- worked out once. Plain data; `false` when no limit applies.
local function build_plan(route, decision)
    local checks = {}
    local plan_limits = decision and decision.plan
    if type(plan_limits) == "table" and type(plan_limits.rate_limits) == "table" then
        for _, spec in ipairs(plan_limits.rate_limits) do
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
    local plan = { n = 0, keys = {}, specs = {}, dims = {}, intervals = {}, tolerances = {},
        args1 = {}, allowed_labels = {}, rejected_labels = {}, cacheable = true }
    for i = 1, #checks do
        local spec, on_route = checks[i][1], checks[i][2]
        local dimension = spec.dimension or (on_route and "route" or "key")
        local id, per_address
        if valid(spec) then
            id, per_address = identity(dimension, route, decision, on_route)
        end
        if id then
            local n = plan.n + 1
            plan.n = n
            plan.keys[n] = "rl:" .. id .. ":" .. spec.limit .. "/" .. spec.window .. "/"
                .. (spec.burst or spec.limit)
            plan.specs[n], plan.dims[n] = spec, dimension
            local interval, tolerance = gcra.params(spec)
            plan.intervals[n], plan.tolerances[n] = interval, tolerance
            plan.args1[2 * n - 1], plan.args1[2 * n] = interval, tolerance
            plan.allowed_labels[n] = '{dimension="' .. dimension .. '",result="allowed"}'
            plan.rejected_labels[n] = '{dimension="' .. dimension .. '",result="rejected"}'
            if per_address then
                plan.cacheable = false
            end
        end
    end
    if plan.n == 0 then
        return false
    end
    plan.id = concat(plan.keys, "\0")
    return plan
end

-- decision table -> route table -> plan: a decision lives in the worker's LRU for its TTL,
-- and a new route table brings new route tables, so neither goes stale.
local plans = setmetatable({}, { __mode = "k" })

local function plan_for(route, decision)
    if not decision then
        return build_plan(route, nil)
    end
    local by_route = plans[decision]
    if not by_route then
        by_route = setmetatable({}, { __mode = "k" })
        plans[decision] = by_route
    end
    local plan = by_route[route]
    if plan == nil then
        plan = build_plan(route, decision)
        if plan and not plan.cacheable then
            return plan
        end
        by_route[route] = plan
    end
    return plan
end

-- Checks every applicable limit. Returns true, or nil and an error value (429).
-- Leaves the most restrictive limit's RateLimit-* values in the variables nginx.conf's
-- add_header sends on the response ($gw_rl_limit, $gw_rl_remaining, $gw_rl_reset).
function _M.check(route, decision)
    local plan = plan_for(route, decision)
    if not plan then
        return true
    end
    local allowed, idx, remaining, reset, retry = take(plan)
    if allowed == nil then
        log(WARN, "rate limit check failed: ", idx)
        return true
    end
    local spec = plan.specs[idx]
    reset = ceil(reset)
    local var = ngx.var
    var.gw_rl_limit = spec.limit
    var.gw_rl_remaining = remaining
    var.gw_rl_reset = reset
    if allowed then
        local labels = plan.allowed_labels
        for i = 1, plan.n do
            metrics.inc("gateway_rate_limit_total", labels[i])
        end
        return true
    end
    metrics.inc("gateway_rate_limit_total", plan.rejected_labels[idx])
    retry = ceil(retry)
    if retry < 1 then
        retry = 1
    end
    local headers = { ["Retry-After"] = retry } -- RateLimit-* come from the variables
    return nil, errors.new(429, "Too many requests",
        "Rate limit exceeded (" .. plan.dims[idx] .. "): " .. spec.limit .. " per "
        .. spec.window .. "s; retry after " .. retry .. "s", "1429", headers)
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
        shdict_limit.take("fa:" .. ngx.var.remote_addr, gcra.params(spec))
    end
end

function _M.init_worker()
    redis_limit.init()
end

return _M
