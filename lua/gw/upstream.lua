-- A route's upstream as the balancer needs it: its peers (addresses and ports), policy,
-- timeouts, retries. compile() is pure: a target given by name becomes one peer per address
-- that `addresses_of(name)` knows (lua/gw/dns.lua keeps them), each with its own id, so
-- passive and active health mark one address, not the name.
local concat = table.concat
local find = string.find
local match = string.match
local tonumber = tonumber
local type = type

local _M = {}

-- IPv4 dotted quads and IPv6 (anything with a colon, bracketed or not).
function _M.is_address(host)
    return find(host, ":", 1, true) ~= nil or match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil
end

function _M.parse_target(t)
    if type(t) ~= "string" then
        return nil, "target must be host:port"
    end
    -- IPv6 stays in brackets: nginx's balancer and cosockets take it so, and not bare.
    local host, port = match(t, "^(%[[%x:.]+%]):(%d+)$")
    if not host then
        host, port = match(t, "^([%w%.%-]+):(%d+)$")
    end
    port = tonumber(port)
    if not host or not port or port < 1 or port > 65535 then
        return nil, "bad target " .. t
    end
    return { host = host, port = port, id = t }
end

-- addresses_of(name): a list of addresses, or nil when the name never resolved. A route
-- none of whose targets has an address compiles with no peers and `unresolved` naming them.
function _M.compile(route, addresses_of)
    local up = route.upstream
    if type(up) ~= "table" or type(up.targets) ~= "table" or #up.targets == 0 then
        return nil, "no upstream targets"
    end
    local targets, unresolved = {}, {}
    for _, t in ipairs(up.targets) do
        local parsed, err = _M.parse_target(t)
        if not parsed then
            return nil, err
        end
        if _M.is_address(parsed.host) then
            targets[#targets + 1] = parsed
        else
            local addrs = addresses_of and addresses_of(parsed.host) or {}
            for _, addr in ipairs(addrs) do
                if find(addr, ":", 1, true) then
                    addr = "[" .. addr .. "]"
                end
                targets[#targets + 1] = { host = addr, port = parsed.port, id = t .. "@" .. addr }
            end
            if #addrs == 0 then
                unresolved[#unresolved + 1] = parsed.host
            end
        end
    end
    local timeouts = route.timeouts or {}
    local health = up.health or {}
    return {
        targets = targets,
        unresolved = #targets == 0 and concat(unresolved, ", ") or nil,
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
