-- The gateway's settings: one JSON file rendered by the launcher, read once in the master
-- (init phase) so workers inherit it and secrets need not be readable by them.
local cjson = require("cjson.safe")

local io_open = io.open

local _M = { loaded = false }

local DEFAULTS = {
    poll_interval = 0.5,        -- seconds between route-table polls (worker 0)
    auth_stale_ttl = 60,        -- seconds a decision may be served after expiry if auth fails
    auth_timeout = 3000,        -- milliseconds (enforced by the internal location)
    decision_lru_size = 10000,  -- per-worker decisions
    denial_ttl = 5,             -- seconds, when the auth service names none
    redis_module = "nginx.redis",
    dns_refresh = 5,            -- seconds between resolutions of route target names
}

function _M.load(path)
    local f, err = io_open(path, "r")
    if not f then
        return nil, "cannot open gateway config: " .. tostring(err)
    end
    local text = f:read("*a")
    f:close()
    local conf, derr = cjson.decode(text)
    if not conf then
        return nil, "bad gateway config " .. path .. ": " .. tostring(derr)
    end
    for k, v in pairs(DEFAULTS) do
        if conf[k] == nil then
            conf[k] = v
        end
    end
    for _, key in ipairs({ "control_url", "admin_token", "signing_secret", "gateway_token",
                           "state_dir" }) do
        if not conf[key] then
            return nil, "gateway config lacks " .. key
        end
    end
    for k, v in pairs(conf) do
        _M[k] = v
    end
    _M.loaded = true
    return _M
end

return _M
