-- access_by_lua: request id, reserved headers out, route, decision, context in.
local auth = require("gw.auth")
local cache = require("gw.cache")
local limit = require("gw.limit")
local context = require("gw.context")
local cors = require("gw.cors")
local errors = require("gw.errors")
local request_ids = require("gw.request_id")
local routes = require("gw.routes")
local router = require("gw.router")

local ngx = ngx
local re_find = ngx.re.find
local concat = table.concat

local _M = {}

local REQUEST_ID_RE = [[^[A-Za-z0-9._:-]{8,128}$]]

-- The client's X-Request-Id when it sent a usable one, else a new one.
local function request_id(may_have_one)
    local id = may_have_one and ngx.var.http_x_request_id
    if type(id) ~= "string" or not re_find(id, REQUEST_ID_RE, "jo") then
        id = request_ids.next()
    end
    return id
end

function _M.run()
    local ctx = ngx.ctx
    local rid = request_id(context.strip_client_headers())
    ctx.request_id = rid
    ngx.var.gw_request_id = rid

    local tbl = routes.current()
    if not tbl then
        return errors.exit(503, "Service unavailable", "The gateway has no route table yet")
    end
    local method = ngx.req.get_method()
    local preflight = cors.preflight_method()
    local matcher = tbl.matcher
    local route, why, allowed = router.match(matcher, matcher.has_hosts and ngx.var.host,
        ngx.var.uri,
        preflight or method)
    if not route then
        if why == "method_not_allowed" then
            return errors.exit(405, "Method not allowed",
                "This path does not accept " .. method, nil, { Allow = concat(allowed, ", ") })
        end
        return errors.exit(404, "Not found", "No route matches " .. ngx.var.uri)
    end
    ctx.route = route
    ngx.var.gw_route = route.name
    local body_limit = route.body_limit
    if body_limit then
        -- Before anything of the body is read: by its declared length, and a body that
        -- declares none (chunked) is refused on a route with a limit.
        local length = ngx.var.http_content_length
        if length then
            if (tonumber(length) or body_limit + 1) > body_limit then
                return errors.exit(413, "Request entity too large",
                    "The request body is larger than this route's limit of "
                    .. errors.size_words(body_limit))
            end
        elseif ngx.var.http_transfer_encoding then
            -- nginx's error page (/_gw/error, JSON): it answers even when discarding the
            -- unread body fails on a malformed chunk, where a body sent from here is lost.
            return ngx.exit(411)
        end
    end
    if route.upstream_compiled.unresolved then
        -- Which internal names failed is in the error log, not for the public.
        return errors.exit(503, "Service unavailable",
            "No address is known yet for the service behind this route")
    end
    if route.cors or preflight then
        cors.access(route, preflight)
    end

    if route.auth == "none" then
        local ok, lerr = limit.check(route, nil)
        if not ok then
            return errors.send(lerr)
        end
        return
    end
    local decision, err = auth.decide(route, limit.failed_auth_blocked)
    if not decision then
        if err.status == 401 then
            limit.count_failed_auth()
        end
        return errors.send(err)
    end
    ctx.decision = decision
    local ok, lerr = limit.check(route, decision)
    if not ok then
        return errors.send(lerr)
    end
    local set, unsent = context.set(route.service or route.owner or route.name, decision, rid)
    if not set then
        ngx.log(ngx.ERR, "decision for ", route.name, " cannot be passed upstream: ", unsent)
        return errors.exit(502, "Bad gateway",
            "The authorization service's answer cannot be passed on to the service")
    end
    if route.forward_credentials then
        -- The route's service asked for the caller's credential (docs/routes.md says why
        -- that is rarely wise); every other service never sees it.
        ngx.var.gw_credential = ngx.var.http_authorization
    end
    if route.cache or not cache.is_safe(method) then
        cache.access(route, decision)
    end
end

return _M
