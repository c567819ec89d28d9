-- init_worker_by_lua: per-worker state and the timers that keep the node current.
local auth = require("gw.auth")
local config = require("gw.config")
local dns = require("gw.dns")
local events = require("gw.events")
local health = require("gw.health")
local limit = require("gw.limit")
local metrics = require("gw.metrics")
local routes = require("gw.routes")

local ngx = ngx
local log = ngx.log
local ERR, WARN = ngx.ERR, ngx.WARN
local every = ngx.timer.every

local _M = {}

local REFRESH = 0.1 -- seconds: how often a worker looks for a newer table in the dict

local last_poll_error

local function poll(premature)
    if premature then
        return
    end
    local version, err = routes.poll()
    if not version and err ~= last_poll_error then
        -- Say it once per kind of failure; the last good table keeps serving.
        log(WARN, "route table poll: ", err)
    end
    last_poll_error = not version and err or nil
    routes.refresh()
end

-- Resolve the current table's target names again (their addresses may move). A slow
-- resolver must not pile runs up: one at a time.
local resolving = false

local function reresolve(premature)
    local tbl = not premature and not resolving and routes.current()
    if not tbl then
        return
    end
    resolving = true
    local ok, changed = pcall(dns.resolve, dns.names(tbl.routes))
    resolving = false
    if not ok then
        log(ERR, "resolving route target names: ", changed)
    elseif changed then
        routes.addresses_changed()
    end
end

local function refresh(premature)
    if not premature then
        routes.refresh()
    end
end

function _M.run()
    auth.init_worker()
    limit.init_worker()
    if ngx.worker.id() == 0 then
        events.start()
        local ok, err = every(config.poll_interval, poll)
        if not ok then
            log(ERR, "cannot start route poller: ", err)
        end
        ngx.timer.at(0, poll)
        -- Also at once: a table kept on disk (or already in the dict) holds names too.
        ngx.timer.at(0, reresolve)
        assert(every(config.dns_refresh, reresolve))
        assert(every(1, function(premature)
            local current = not premature and routes.current()
            if current then
                health.tick(current.routes)
            end
        end))
    end
    assert(every(REFRESH, refresh))
    assert(every(1, function(premature)
        if not premature then
            metrics.flush()
        end
    end))
end

return _M
