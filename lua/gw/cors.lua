-- CORS per route (route.cors = {origins, methods, headers, max_age, credentials}):
-- preflights are answered by the gateway without auth; actual responses get the
-- Access-Control-* headers for allowed origins only.
local ngx = ngx
local concat = table.concat

local _M = {}

local EXPOSE = "X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    .. "Retry-After, X-Cache-Status"

local function allowed(policy, origin)
    local origins = policy.origins
    if type(origins) ~= "table" then
        return false
    end
    for i = 1, #origins do
        if origins[i] == "*" or origins[i] == origin then
            return true
        end
    end
    return false
end

-- Before the route is matched: a preflight asks for the method it will use.
function _M.preflight_method()
    if ngx.req.get_method() ~= "OPTIONS" or not ngx.var.http_origin then
        return nil
    end
    return ngx.var.http_access_control_request_method
end

-- Returns true when the preflight was answered.
function _M.access(route, preflight)
    local policy = route.cors
    local origin = ngx.var.http_origin
    if type(policy) ~= "table" or not origin or not allowed(policy, origin) then
        if preflight then
            return require("gw.errors").exit(403, "Forbidden",
                "Origin " .. tostring(origin) .. " is not allowed", "1403")
        end
        return false
    end
    ngx.ctx.cors_origin = origin
    ngx.ctx.cors_policy = policy
    if not preflight then
        return false
    end
    ngx.status = 204
    local h = ngx.header
    h["Access-Control-Allow-Origin"] = origin
    h["Vary"] = "Origin"
    h["Access-Control-Allow-Methods"] = type(policy.methods) == "table"
        and concat(policy.methods, ", ") or preflight
    h["Access-Control-Allow-Headers"] = type(policy.headers) == "table"
        and concat(policy.headers, ", ")
        or (ngx.var.http_access_control_request_headers or "Authorization, Content-Type")
    h["Access-Control-Max-Age"] = policy.max_age or 600
    if policy.credentials then
        h["Access-Control-Allow-Credentials"] = "true"
    end
    return ngx.exit(204)
end

function _M.header_filter(ctx)
    local h = ngx.header
    h["Access-Control-Allow-Origin"] = ctx.cors_origin
    h["Vary"] = "Origin"
    h["Access-Control-Expose-Headers"] = EXPOSE
    if ctx.cors_policy.credentials then
        h["Access-Control-Allow-Credentials"] = "true"
    end
end

return _M
