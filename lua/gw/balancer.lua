-- balancer_by_lua: pick a target of the route's upstream; retry idempotent requests on
-- another target; skip targets that failed `failures` times (passive health) for `cooldown`.
local ngx_balancer = require("ngx.balancer")

local ngx = ngx
local shared = ngx.shared
local log = ngx.log
local ERR, WARN = ngx.ERR, ngx.WARN

local _M = {}

local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true, DELETE = true }
local HEALTH = "gw_health"

local function is_down(id)
    return shared[HEALTH]:get("down:" .. id) ~= nil
end

function _M.report_failure(up, target)
    local dict = shared[HEALTH]
    local n = dict:incr("fail:" .. target.id, 1, 0, up.cooldown)
    if n and n >= up.failures then
        dict:set("down:" .. target.id, true, up.cooldown)
        dict:delete("fail:" .. target.id)
        log(WARN, "target ", target.id, " marked down for ", up.cooldown, "s")
    end
end

local function pick(up, tried)
    local targets = up.targets
    local n = #targets
    if up.least_conn then
        local dict = shared[HEALTH]
        local best, best_load
        for i = 1, n do
            local t = targets[i]
            if not tried[t.id] and not is_down(t.id) then
                local load = dict:get("conn:" .. t.id) or 0
                if not best or load < best_load then
                    best, best_load = t, load
                end
            end
        end
        if best then
            return best
        end
    else
        for _ = 1, n do
            up.rr = up.rr % n + 1
            local t = targets[up.rr]
            if not tried[t.id] and not is_down(t.id) then
                return t
            end
        end
    end
    -- Everything is down or tried: try one anyway rather than refuse outright.
    for i = 1, n do
        if not tried[targets[i].id] then
            return targets[i]
        end
    end
    up.rr = up.rr % n + 1
    return targets[up.rr]
end

function _M.run()
    local ctx = ngx.ctx
    local route = ctx.route
    if not route then
        return ngx.exit(500)
    end
    local up = route.upstream_compiled
    local tried = ctx.tried
    if not tried then
        tried = {}
        ctx.tried = tried
        local more = IDEMPOTENT[ngx.req.get_method()] and up.retries or 0
        -- Also with one target: an idempotent request that met a kept-alive connection the
        -- service had just closed is safe to send again.
        if more > 0 then
            ngx_balancer.set_more_tries(more)
        end
        ngx_balancer.set_timeouts(up.connect, up.send, up.read)
    elseif ctx.target then
        local state = ngx_balancer.get_last_failure()
        if state then
            _M.report_failure(up, ctx.target)
        end
    end
    local target = pick(up, tried)
    tried[target.id] = true
    ctx.target = target
    if up.least_conn then
        shared[HEALTH]:incr("conn:" .. target.id, 1, 0)
        ctx.conn_counted = ctx.conn_counted or {}
        ctx.conn_counted[#ctx.conn_counted + 1] = target.id
    end
    local ok, err = ngx_balancer.set_current_peer(target.host, target.port)
    if not ok then
        log(ERR, "set_current_peer ", target.id, ": ", err)
        return ngx.exit(500)
    end
end

-- Log phase: release least-conn counts; a final connect failure counts against the target.
function _M.finish(ctx)
    local counted = ctx.conn_counted
    if counted then
        local dict = shared[HEALTH]
        for i = 1, #counted do
            dict:incr("conn:" .. counted[i], -1, 0)
        end
    end
    local status = ngx.status
    if ctx.target and (status == 502 or status == 504) and ctx.route then
        _M.report_failure(ctx.route.upstream_compiled, ctx.target)
    end
end

return _M
