-- log_by_lua: passive health bookkeeping and metrics.
local balancer = require("gw.balancer")
local config = require("gw.config")
local metrics = require("gw.metrics")

local ngx = ngx
local tonumber = tonumber
local gmatch = string.gmatch
local find, gsub, format, byte = string.find, string.gsub, string.format, string.byte

local _M = {}

local route_labels = {}  -- route name -> '{route="name"}'
local status_labels = {} -- route name -> status -> '{route="name",status="200"}'

local function labels_for(name, status)
    local by_status = status_labels[name]
    if not by_status then
        by_status = {}
        status_labels[name] = by_status
        route_labels[name] = '{route="' .. name .. '"}'
    end
    local l = by_status[status]
    if not l then
        l = '{route="' .. name .. '",status="' .. status .. '"}'
        by_status[status] = l
    end
    return route_labels[name], l
end

-- "0.002, 0.010 : 0.001" (retries, internal redirects) -> the sum
local function upstream_seconds(value)
    if not value then
        return nil
    end
    local one = tonumber(value) -- one upstream try, the common case: no pattern (not JIT-compiled)
    if one then
        return one
    end
    local total
    for n in gmatch(value, "[%d%.]+") do
        total = (total or 0) + (tonumber(n) or 0)
    end
    return total
end

-- $uri for the access log: bytes outside printable ASCII as %XX, so the JSON line stays
-- valid UTF-8 whatever the client sent.
local function loggable(uri)
    if not find(uri, "[^\32-\126]") then
        return uri
    end
    return (gsub(uri, "[^\32-\126]", function(c)
        return format("%%%02X", byte(c))
    end))
end
_M.loggable = loggable

function _M.run()
    if config.access_log then
        ngx.var.gw_log_uri = loggable(ngx.var.uri)
    end
    local ctx = ngx.ctx
    local route = ctx.route
    if route then
        balancer.finish(ctx)
    end
    local name = route and route.name or "none"
    local labels, with_status = labels_for(name, ngx.status)
    metrics.inc("gateway_requests_total", with_status)
    local total = ngx.now() - ngx.req.start_time() -- $request_time, without the variable
    metrics.observe("gateway_request_duration_seconds", labels, total)
    local up = upstream_seconds(ngx.var.upstream_response_time)
    if up then
        metrics.observe("gateway_upstream_duration_seconds", labels, up)
        local own = total - up
        metrics.observe("gateway_own_duration_seconds", labels, own > 0 and own or 0)
    end
end

return _M
