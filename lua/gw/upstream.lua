-- A route's upstream as the balancer needs it: parsed targets, policy, timeouts, retries.
-- compile() is pure; pick() and report() use the gw_health dict for passive health.
local match = string.match
local tonumber = tonumber
local type = type

local _M = {}

local LOCALHOST = { localhost = "127.0.0.1" }

function _M.parse_target(t)
    if type(t) ~= "string" then
        return nil, "target must be host:port"
    end
    local host, port = match(t, "^%[([%x:]+)%]:(%d+)$")
    if not host then
        host, port = match(t, "^([%w%.%-]+):(%d+)$")
    end
    port = tonumber(port)
    if not host or not port or port < 1 or port > 65535 then
        return nil, "bad target " .. t
    end
    return { host = LOCALHOST[host] or host, port = port, id = t }
end

function _M.compile(route)
    local up = route.upstream
    if type(up) ~= "table" or type(up.targets) ~= "table" or #up.targets == 0 then
        return nil, "no upstream targets"
    end
    local targets = {}
    for i, t in ipairs(up.targets) do
        local parsed, err = _M.parse_target(t)
        if not parsed then
            return nil, err
        end
        targets[i] = parsed
    end
    local timeouts = route.timeouts or {}
    local health = up.health or {}
    return {
        targets = targets,
        least_conn = up.balance == "least_conn",
        connect = (timeouts.connect or 2000) / 1000,
        send = (timeouts.send or 10000) / 1000,
        read = (timeouts.read or 30000) / 1000,
        retries = route.retries or 1,
        failures = health.failures or 3,
        cooldown = health.cooldown or 10,
        rr = 0,
    }
end

return _M
