-- Events that keep a node current, run by worker 0:
--  * with Redis: SUBSCRIBE to revocations (evict the key's cached decisions at once) and to
--    route changes (poll the control plane now instead of at the next tick);
--  * always: poll the auth service's revocation log once a second, so a node without Redis,
--    or one that missed messages while disconnected, still converges.
local cjson = require("cjson.safe")
local config = require("gw.config")
local httpc = require("gw.httpc")
local redis_limit = require("gw.limit.redis")
local revocation = require("gw.revocation")
local routes = require("gw.routes")

local ngx = ngx
local log = ngx.log
local WARN, INFO = ngx.WARN, ngx.INFO
local shared = ngx.shared
local exiting = ngx.worker.exiting
local sleep = ngx.sleep

local _M = {}

local REVOCATIONS = "portcullis:revocations"
local ROUTES = "portcullis:routes"
local REVOCATION_POLL = 1

local function on_revocation(payload)
    local event = cjson.decode(payload)
    local key_id = type(event) == "table" and event.key_id
    if type(key_id) == "string" and key_id ~= "" then
        revocation.revoke(key_id)
        log(INFO, "revoked key ", key_id, " (", event.reason or "revoked", ")")
    end
end

local function subscribe_loop(premature)
    if premature then
        return
    end
    local last_err
    while not exiting() do
        local red, err = redis_limit.connect(1000)
        if red then
            red:set_timeouts(1000, 1000, 1000)
            local ok, serr = red:subscribe(REVOCATIONS, ROUTES)
            if ok then
                last_err = nil
                -- A periodic read timeout just lets us notice the worker exiting.
                while not exiting() do
                    local res, rerr = red:read_reply()
                    if res then
                        if res[1] == "message" and res[2] == REVOCATIONS then
                            on_revocation(res[3])
                        elseif res[1] == "message" and res[2] == ROUTES then
                            routes.poll()
                            routes.refresh()
                        end
                    elseif rerr ~= "timeout" then
                        err = rerr
                        break
                    end
                end
            else
                err = serr
            end
            red:close()
        end
        if err and err ~= last_err then
            log(WARN, "redis events unavailable (", err, "); polling only")
            last_err = err
        end
        sleep(1)
    end
end

local function poll_revocations(premature)
    if premature then
        return
    end
    local dict = shared.gw_revoked
    local since = dict:get("seq")
    local status, body = httpc.request({
        url = config.authsvc_url .. "/v1/revocations?since=" .. (since or 0),
        timeout = 1000,
    })
    if status ~= 200 then
        return
    end
    local data = cjson.decode(body)
    if type(data) ~= "table" or type(data.seq) ~= "number" then
        return
    end
    if since and type(data.key_ids) == "table" then
        for _, key_id in ipairs(data.key_ids) do
            revocation.revoke(key_id)
        end
    end
    dict:set("seq", data.seq)
end

function _M.start()
    if redis_limit.enabled() then
        ngx.timer.at(0, subscribe_loop)
    end
    if config.authsvc_url then
        ngx.timer.at(0, poll_revocations)
        ngx.timer.every(REVOCATION_POLL, poll_revocations)
    end
end

return _M
