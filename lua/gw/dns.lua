-- Route targets given by name: worker 0 resolves every name of the route table in nginx's
-- thread pool (lua/gw/getaddrinfo.lua, so the event loop never waits on a resolver) when a
-- new table arrives and every `dns_refresh` seconds, and keeps the addresses in the gw_routes
-- dict, where every worker's table compilation reads them (lua/gw/upstream.lua). A name that
-- stops resolving keeps its last addresses: a resolver outage must not take routes down.
local metrics = require("gw.metrics")
local upstream = require("gw.upstream")

local ngx = ngx
local shared = ngx.shared
local log = ngx.log
local WARN, ERR, NOTICE = ngx.WARN, ngx.ERR, ngx.NOTICE
local gmatch = string.gmatch
local type = type

local _M = {}

local DICT = "gw_routes"
local POOL = "gw_dns"
local PREFIX = "dns:"

local last_error = {} -- name -> the last failure logged (each kind is said once)

-- The distinct host names among a table's targets ("host:port" strings).
function _M.names(routes)
    local seen, out = {}, {}
    for _, r in ipairs(routes or {}) do
        local targets = type(r.upstream) == "table" and r.upstream.targets
        for _, t in ipairs(type(targets) == "table" and targets or {}) do
            local parsed = upstream.parse_target(t)
            local host = parsed and parsed.host
            if host and not upstream.is_address(host) and not seen[host] then
                seen[host] = true
                out[#out + 1] = host
            end
        end
    end
    return out
end

-- A name's last known addresses, or nil when it never resolved.
function _M.addresses(name)
    local value = shared[DICT]:get(PREFIX .. name)
    if not value then
        return nil
    end
    local list = {}
    for addr in gmatch(value, "%S+") do
        list[#list + 1] = addr
    end
    return list
end

local function lookup(name)
    local ran, ok, result = ngx.run_worker_thread(POOL, "gw.getaddrinfo", "resolve", name)
    if not ran then
        return nil, "thread pool " .. POOL .. ": " .. tostring(ok)
    end
    if not ok then
        return nil, result
    end
    return result
end

-- Resolve `names` (yields: timers only); returns true when any name's addresses changed.
function _M.resolve(names)
    local dict = shared[DICT]
    local changed = false
    for _, name in ipairs(names) do
        local addrs, err = lookup(name)
        local key = PREFIX .. name
        local old = dict:get(key)
        if addrs then
            last_error[name] = nil
            if addrs ~= old then
                dict:set(key, addrs)
                changed = true
                log(NOTICE, "target name ", name, " resolves to ", addrs)
            end
        else
            metrics.inc("gateway_dns_failures_total", { name = name })
            if err ~= last_error[name] then
                last_error[name] = err
                if old then
                    log(WARN, "target name ", name, " did not resolve (", err, "); keeping ", old)
                else
                    log(ERR, "target name ", name, " does not resolve: ", err)
                end
            end
        end
    end
    return changed
end

return _M
