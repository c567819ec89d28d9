-- Active health checks (worker 0): routes whose upstream names `health.path` have each
-- target probed every `health.interval` seconds. A failed probe marks the target down for
-- `cooldown`; a good one brings it back at once (passive marks included).
local httpc = require("gw.httpc")

local ngx = ngx
local shared = ngx.shared
local log = ngx.log
local WARN = ngx.WARN

local _M = {}

local next_probe = {} -- target id .. path -> time

local function probe(premature, target, path, cooldown)
    if premature then
        return
    end
    local status = httpc.request({
        url = "http://" .. target.host .. ":" .. target.port .. path, timeout = 1000,
    })
    local dict = shared.gw_health
    if status and status >= 200 and status < 400 then
        if dict:get("down:" .. target.id) then
            log(WARN, "target ", target.id, " is healthy again")
        end
        dict:delete("down:" .. target.id)
        dict:delete("fail:" .. target.id)
    else
        if not dict:get("down:" .. target.id) then
            log(WARN, "target ", target.id, " failed its health check ", path)
        end
        dict:set("down:" .. target.id, true, cooldown)
    end
end

-- Called every second by worker 0 with the current routes.
function _M.tick(routes_list)
    local now = ngx.now()
    for _, route in ipairs(routes_list or {}) do
        local health = type(route.upstream) == "table" and route.upstream.health
        local up = route.upstream_compiled
        if type(health) == "table" and type(health.path) == "string" and up then
            local interval = health.interval or 5
            for _, target in ipairs(up.targets) do
                local id = target.id .. health.path
                if (next_probe[id] or 0) <= now then
                    next_probe[id] = now + interval
                    ngx.timer.at(0, probe, target, health.path, math.max(up.cooldown,
                        interval * 2))
                end
            end
        end
    end
end

return _M
