-- Events that keep a node current, run by worker 0:
--  * with Redis: SUBSCRIBE to revocations (evict the key's cached decisions at once) and to
--    route changes (poll the control plane now instead of at the next tick);
--  * always: poll the auth service's revocation log once a second, so a node without Redis,
--    or one that missed messages while disconnected, still converges. A log entry's seq is
--    taken when its transaction writes and it becomes visible when that commits, so under
--    concurrent revocations seq 41 can appear after 42: the poller keeps a watermark below
--    which every seq has been applied and asks from there, applying each seq once, and a
--    gap is given up on (a rolled-back transaction's seq never appears) only after
--    GAP_GRACE seconds.
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

local GAP_GRACE = 30

local function on_revocation(payload)
    local event = cjson.decode(payload)
    local key_id = type(event) == "table" and event.key_id
    if type(key_id) == "string" and key_id ~= "" then
        local seq = tonumber(event.seq)
        revocation.revoke(key_id, seq)
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

-- Move the watermark up over seqs applied, and over gaps older than GAP_GRACE; `top` is
-- the highest seq the log has shown.
local function advance(dict, mark, top)
    local t = ngx.now()
    while mark < top do
        local nxt = mark + 1
        if not revocation.seen(nxt) then
            local first = dict:get("gap:" .. nxt)
            if not first then
                dict:set("gap:" .. nxt, t, GAP_GRACE * 4)
                break
            elseif t - first < GAP_GRACE then
                break
            end
            log(WARN, "revocation log: seq ", nxt, " never appeared; skipped")
        end
        mark = nxt
    end
    return mark
end

local function poll_revocations(premature)
    if premature then
        return
    end
    local dict = shared.gw_revoked
    local mark = dict:get("seq")
    local status, body = httpc.request({
        url = config.authsvc_url .. "/v1/revocations?since=" .. (mark or 0),
        headers = { Authorization = "Bearer " .. config.gateway_token },
        timeout = 1000,
    })
    if status ~= 200 then
        return
    end
    local data = cjson.decode(body)
    if type(data) ~= "table" or type(data.seq) ~= "number" or type(data.entries) ~= "table" then
        return
    end
    if not mark then
        -- A new node has no decisions to evict: start at the log's end.
        dict:set("seq", data.seq)
        return
    end
    local top = mark
    for _, e in ipairs(data.entries) do
        local seq, key_id = tonumber(e[1]), e[2]
        if seq and type(key_id) == "string" then
            if seq > mark then
                revocation.revoke(key_id, seq)
            end
            if seq > top then
                top = seq
            end
        end
    end
    dict:set("seq", advance(dict, mark, top))
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
