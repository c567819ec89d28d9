-- Rate limits on a Redis Cluster: keys are routed to the master owning their hash slot
-- (CRC16 of the key, as Redis computes it), the slot map comes from CLUSTER SLOTS and is
-- refreshed on MOVED/ASK or a failed node. Keys of one request that share a slot are
-- charged in one script call; across slots the check is done slot by slot and a refusal
-- gives back what earlier slots charged, so the outcome is still all or nothing.
local bit = require("bit")

local ngx = ngx
local band, bxor, lshift, rshift = bit.band, bit.bxor, bit.lshift, bit.rshift
local byte = string.byte
local find = string.find
local sub = string.sub
local match = string.match
local tonumber = tonumber
local log = ngx.log
local WARN = ngx.WARN

local _M = {}

local SLOTS = 16384
local REFUND = [[
for i = 1, #KEYS do
  local v = tonumber(redis.call('GET', KEYS[i]))
  if v then
    redis.call('SET', KEYS[i], string.format('%.3f', v - tonumber(ARGV[i])), 'KEEPTTL')
  end
end
return 1
]]
local refund_sha

local base          -- gw.limit.redis, for run()
local seeds = {}
local slot_owner    -- slot (0-based) -> "host:port"
local map_loaded_at = 0

-- CRC16-CCITT (XMODEM), table-driven.
local CRC_TABLE = {}
for i = 0, 255 do
    local crc = lshift(i, 8)
    for _ = 1, 8 do
        if band(crc, 0x8000) ~= 0 then
            crc = bxor(lshift(crc, 1), 0x1021)
        else
            crc = lshift(crc, 1)
        end
    end
    CRC_TABLE[i] = band(crc, 0xFFFF)
end

function _M.crc16(s)
    local crc = 0
    for i = 1, #s do
        local idx = band(bxor(rshift(crc, 8), byte(s, i)), 0xFF)
        crc = band(bxor(lshift(crc, 8), CRC_TABLE[idx]), 0xFFFF)
    end
    return crc
end

-- Redis's key slot, hash tags ({...}) included.
function _M.slot(key)
    local open = find(key, "{", 1, true)
    if open then
        local close = find(key, "}", open + 1, true)
        if close and close > open + 1 then
            key = sub(key, open + 1, close - 1)
        end
    end
    return _M.crc16(key) % SLOTS
end

local function split(node)
    local host, port = match(node, "^(.+):(%d+)$")
    return host, tonumber(port)
end

local function refresh()
    for _, seed in ipairs(seeds) do
        local host, port = split(seed)
        local red = base.connect(200, host, port)
        if red then
            local res, err = red:cluster("slots")
            if res then
                red:set_keepalive(60000, 16)
                local owner = {}
                for _, range in ipairs(res) do
                    local node = range[3][1] .. ":" .. range[3][2]
                    for s = range[1], range[2] do
                        owner[s] = node
                    end
                end
                slot_owner = owner
                map_loaded_at = ngx.now()
                return true
            end
            red:close()
            log(WARN, "CLUSTER SLOTS from ", seed, ": ", err)
        end
    end
    return nil, "no cluster seed answered CLUSTER SLOTS"
end

function _M.init(redis_base, nodes)
    base = redis_base
    seeds = nodes
    refund_sha = require("gw.hmac").to_hex(ngx.sha1_bin(REFUND))
end

local function run_on_slot(slot, script, sha, keys, args)
    if not slot_owner or ngx.now() - map_loaded_at > 60 then
        local ok, err = refresh()
        if not ok and not slot_owner then
            return nil, err
        end
    end
    for _ = 1, 3 do
        local host, port = split(slot_owner[slot] or seeds[1])
        local res, err = base.run(script, sha, keys, args, host, port)
        if res then
            return res
        end
        if not (find(err, "MOVED", 1, true) or find(err, "ASK", 1, true)
                or find(err, "CLUSTERDOWN", 1, true)) then
            refresh()
            return nil, err
        end
        refresh()
    end
    return nil, "cluster kept redirecting"
end

-- Same contract as gw.limit.redis take_all: {allowed, ahead_ms per key...}.
function _M.take_all(keys, args)
    local groups, order = {}, {}
    for i = 1, #keys do
        local s = _M.slot(keys[i])
        local g = groups[s]
        if not g then
            g = { slot = s, idx = {}, keys = {}, args = {} }
            groups[s] = g
            order[#order + 1] = g
        end
        g.idx[#g.idx + 1] = i
        g.keys[#g.keys + 1] = keys[i]
        g.args[#g.args + 1] = args[2 * i - 1]
        g.args[#g.args + 1] = args[2 * i]
    end
    local out = { 1 }
    local charged = {}
    for _, g in ipairs(order) do
        local res, err = run_on_slot(g.slot, base.SCRIPT, base.sha, g.keys, g.args)
        if not res then
            return nil, err
        end
        for j, i in ipairs(g.idx) do
            out[i + 1] = res[j + 1]
        end
        if tonumber(res[1]) == 1 then
            charged[#charged + 1] = g
        else
            out[1] = 0
            break
        end
    end
    if out[1] == 0 then
        for _, g in ipairs(charged) do -- all or nothing across slots
            local intervals = {}
            for j = 1, #g.keys do
                intervals[j] = g.args[2 * j - 1]
            end
            run_on_slot(g.slot, REFUND, refund_sha, g.keys, intervals)
        end
        for i = 1, #keys do
            out[i + 1] = out[i + 1] or "0"
        end
    end
    return out
end

return _M
