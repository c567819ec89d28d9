-- GCRA in Redis: one Lua script, run by EVALSHA (loaded on NOSCRIPT), atomic per key, so
-- the limit holds across every gateway node. The clock is Redis's own (TIME), so nodes with
-- skewed clocks still agree.
local config = require("gw.config")

local ngx = ngx
local tonumber = tonumber
local find = string.find
local match = string.match
local unpack = unpack

local _M = {}

-- Every limit of one request in one round trip, all or nothing: if any limit would be
-- exceeded none is charged. KEYS: the limit keys; ARGV: interval, tolerance per key (ms).
-- Returns {allowed (0/1), ahead_ms per key...}.
local SCRIPT = [[
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local out, news, ok = {}, {}, 1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new = tat + interval
  news[i] = new
  out[i + 1] = tostring(new - now)
  if new - now > tolerance then ok = 0 end
end
if ok == 1 then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%.3f', news[i]), 'PX',
               math.ceil(news[i] - now) + 1)
  end
end
out[1] = ok
return out
]]
local sha

local redis_mod

local function sha1_hex(s)
    return require("gw.hmac").to_hex(ngx.sha1_bin(s))
end

function _M.parse(url)
    local rest = match(url or "", "^rediss?://(.+)$")
    if not rest then
        return nil
    end
    local password
    local userinfo, hostpart = match(rest, "^([^@/]*)@(.+)$")
    if userinfo then
        password = match(userinfo, ":(.*)$") or userinfo
        rest = hostpart
    end
    local host, port, db = match(rest, "^([^:/]+):?(%d*)/?(%d*)")
    if not host then
        return nil
    end
    return { host = host, port = tonumber(port) or 6379, db = tonumber(db),
             password = password ~= "" and password or nil }
end

local target
local cluster

function _M.init()
    redis_mod = require(config.redis_module)
    sha = sha1_hex(SCRIPT)
    _M.sha = sha
    local nodes = config.redis_cluster
    if type(nodes) == "table" and #nodes > 0 then
        cluster = require("gw.limit.cluster")
        cluster.init(_M, nodes)
        local host, port = match(nodes[1], "^(.+):(%d+)$")
        target = { host = host, port = tonumber(port) }
        return true
    end
    if not config.redis_url or config.redis_url == ngx.null then
        return false
    end
    target = _M.parse(config.redis_url)
    return target ~= nil
end

function _M.enabled()
    return target ~= nil
end

-- Pooled connections outlive a Redis restart and then fail one by one. A failure moves the
-- worker to a new pool name, so every connection after it is fresh.
local epoch = 0

function _M.discard_pool()
    epoch = epoch + 1
end

local pools = {} -- "host:port" -> {pool = name} for the current epoch (built once)
local pools_epoch = 0

local function pool_options(host, port)
    if pools_epoch ~= epoch then
        pools, pools_epoch = {}, epoch
    end
    local id = host .. ":" .. port
    local opts = pools[id]
    if not opts then
        opts = { pool = "gw_redis:" .. id .. ":" .. epoch }
        pools[id] = opts
    end
    return opts
end

-- host, port: a cluster node; nil for the REDIS_URL server.
function _M.connect(timeout, host, port)
    host, port = host or target.host, port or target.port
    local red = redis_mod:new()
    red:set_timeouts(timeout or 100, 200, 200)
    local ok, err = red:connect(host, port, pool_options(host, port))
    if not ok then
        return nil, err
    end
    if red:get_reused_times() == 0 then
        if target.password then
            ok, err = red:auth(target.password)
            if not ok then
                return nil, err
            end
        end
        if target.db and target.db ~= 0 then
            red:select(target.db)
        end
    end
    return red
end

-- Run a script (by SHA, loading it on NOSCRIPT) with keys and args on one server.
-- Returns the answer, or nil, err (err starts with "MOVED" when a cluster slot moved).
function _M.run(script, script_sha, keys, args, host, port)
    local red, err = _M.connect(nil, host, port)
    if not red then
        _M.discard_pool()
        return nil, err
    end
    local n = #keys
    local flat = { script_sha, n }
    for i = 1, n do
        flat[i + 2] = keys[i]
    end
    for i = 1, #args do
        flat[n + 2 + i] = args[i]
    end
    local res
    res, err = red:evalsha(unpack(flat))
    if not res and err and find(err, "NOSCRIPT", 1, true) then
        flat[1] = script
        res, err = red:eval(unpack(flat))
    end
    if not res then
        if err and (find(err, "MOVED", 1, true) or find(err, "ASK", 1, true)) then
            red:set_keepalive(60000, 256)
        else
            red:close()
            _M.discard_pool()
        end
        return nil, err
    end
    red:set_keepalive(60000, 256)
    return res
end

-- keys: list of limit keys; args: interval, tolerance for each, flattened.
-- Returns the script's answer {allowed, ahead_ms...} or nil, err.
function _M.take_all(keys, args)
    if cluster then
        return cluster.take_all(keys, args)
    end
    return _M.run(SCRIPT, sha, keys, args)
end

_M.SCRIPT = SCRIPT

return _M
