-- init_by_lua (master): load resty.core, the config and the last good route table.
require("resty.core")
local config = require("gw.config")

local _M = {}

function _M.run(path)
    assert(config.load(path))
    local routes = require("gw.routes")
    local version = routes.load_saved()
    if version then
        ngx.log(ngx.NOTICE, "serving saved route table version ", version)
    end
    -- Warm what every worker needs.
    require("gw.access")
    require("gw.balancer")
    require("gw.response")
    require("gw.log")
end

return _M
