-- The loopback status listener: health and Prometheus metrics.
local cjson = require("cjson.safe")
local routes = require("gw.routes")

local ngx = ngx

local _M = {}

function _M.health()
    local version = ngx.shared.gw_routes:get("version")
    ngx.header["Content-Type"] = "application/json"
    if not version then
        ngx.status = 503
        ngx.say(cjson.encode({ status = "no route table" }))
        return
    end
    ngx.say(cjson.encode({ status = "ok", routes_version = version,
                           worker_routes_version = routes.version() }))
end

function _M.metrics()
    ngx.header["Content-Type"] = "text/plain; version=0.0.4"
    ngx.print(require("gw.metrics").render())
end

return _M
