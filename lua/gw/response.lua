-- header_filter / body_filter: an upstream's non-JSON error page replaced by our JSON error,
-- so clients see one error shape. (The request id and RateLimit-* headers are nginx.conf's
-- add_header.)
local cache = require("gw.cache")
local cors = require("gw.cors")
local errors = require("gw.errors")

local ngx = ngx
local find = string.find

local _M = {}

function _M.header()
    local ctx = ngx.ctx
    if ctx.cors_origin then
        cors.header_filter(ctx)
    end
    if ctx.bump_account or ctx.cache_status then
        cache.header_filter()
    end
    local status = ngx.status
    if status >= 400 and ctx.route and ngx.var.upstream_status then
        local ctype = ngx.header["Content-Type"] or ""
        if not find(ctype, "json", 1, true) then
            ctx.error_body = errors.body(errors.KNOWN[status] and status or
                (status >= 500 and 502 or 400)) .. "\n"
            ngx.header["Content-Type"] = "application/json"
            ngx.header["Content-Length"] = #ctx.error_body
            ngx.header["Content-Encoding"] = nil
        end
    end
end

function _M.body()
    local ctx = ngx.ctx
    if ctx.cache_chunks then
        cache.body_filter()
    end
    local replacement = ctx.error_body
    if not replacement then
        return
    end
    if ngx.arg[2] then
        ngx.arg[1] = replacement
    else
        ngx.arg[1] = nil
    end
end

return _M
