-- The route table: fetched from the control plane by worker 0, shared with every worker
-- through the gw_routes dict, compiled per worker, swapped in atomically (one assignment),
-- and kept on disk so a gateway restarts and serves while the control plane is down.
local cjson = require("cjson.safe")
local config = require("gw.config")
local dns = require("gw.dns")
local httpc = require("gw.httpc")
local router = require("gw.router")
local upstream = require("gw.upstream")

local ngx = ngx
local log = ngx.log
local ERR, WARN, INFO = ngx.ERR, ngx.WARN, ngx.INFO
local shared = ngx.shared
local io_open = io.open
local os_rename = os.rename
local type = type

local _M = {}

local DICT = "gw_routes"
local DEFAULT_MAX_REQUEST_BODY = 1048576 -- gateway/control/route.py's default
local current          -- { version, matcher } of this worker
local compiled_version -- version held by `current`
-- The dict's "serial" moves whenever workers must compile again: a new table, or new
-- addresses for one of its target names.
local compiled_serial

local function state_file()
    return config.state_dir .. "/routes.json"
end

-- Validate and compile a table (decoded JSON); returns { version, matcher } or nil, err.
function _M.build(tbl)
    if type(tbl) ~= "table" or type(tbl.version) ~= "number" or type(tbl.routes) ~= "table" then
        return nil, "route table lacks version or routes"
    end
    for i, r in ipairs(tbl.routes) do
        if type(r.name) ~= "string" or type(r.paths) ~= "table" or #r.paths == 0 then
            return nil, "route " .. i .. " lacks a name or paths"
        end
        local up, err = upstream.compile(r, dns.addresses)
        if not up then
            return nil, "route " .. r.name .. ": " .. err
        end
        r.upstream_compiled = up
        -- The body limit: a number of bytes, or false for none (an explicit null); a
        -- route stored before the field existed gets the control plane's default.
        local limit = r.max_request_body
        if limit == nil then
            limit = DEFAULT_MAX_REQUEST_BODY
        end
        r.body_limit = type(limit) == "number" and limit or false
    end
    return { version = tbl.version, routes = tbl.routes, matcher = router.compile(tbl.routes) }
end

local function publish(json, version)
    local dict = shared[DICT]
    local ok, err = dict:set("json", json)
    if not ok then
        return nil, "gw_routes dict: " .. err
    end
    dict:set("version", version)
    dict:incr("serial", 1, 0)
    return true
end

-- Worker 0: a target name's addresses changed; every worker compiles the table again.
function _M.addresses_changed()
    shared[DICT]:incr("serial", 1, 0)
end

local function save(json)
    local path = state_file()
    local tmp = path .. ".tmp"
    local f, err = io_open(tmp, "w")
    if not f then
        return nil, err
    end
    f:write(json)
    f:close()
    return os_rename(tmp, path)
end

-- Init phase (master): last good table from disk into the dict, if there is one.
function _M.load_saved()
    local f = io_open(state_file(), "r")
    if not f then
        return nil, "no saved route table"
    end
    local json = f:read("*a")
    f:close()
    local tbl = cjson.decode(json)
    local built, err = _M.build(tbl)
    if not built then
        log(WARN, "saved route table ignored: ", err)
        return nil, err
    end
    publish(json, tbl.version)
    return tbl.version
end

-- Worker 0's timer: ask the control plane whether the table changed.
function _M.poll()
    local dict = shared[DICT]
    local have = dict:get("version")
    local headers = { Authorization = "Bearer " .. config.admin_token }
    if have then
        headers["If-None-Match"] = '"' .. have .. '"'
    end
    local status, body = httpc.request({
        url = config.control_url .. "/table", headers = headers, timeout = 2000,
    })
    if not status then
        return nil, body
    end
    if status == 304 then
        return have
    end
    if status ~= 200 then
        return nil, "control plane answered " .. status
    end
    local tbl = cjson.decode(body)
    local built, err = _M.build(tbl)
    if not built then
        log(ERR, "route table version ", tbl and tbl.version, " refused: ", err)
        return nil, err
    end
    -- Names first, so that no worker compiles the new table without their addresses.
    dns.resolve(dns.names(tbl.routes))
    local ok, perr = publish(body, tbl.version)
    if not ok then
        return nil, perr
    end
    local saved, serr = save(body)
    if not saved then
        log(WARN, "could not keep the route table on disk: ", serr)
    end
    log(INFO, "route table version ", tbl.version, " with ", #tbl.routes, " routes")
    return tbl.version
end

-- Every worker: pick up a newer table from the dict.
function _M.refresh()
    local dict = shared[DICT]
    local serial = dict:get("serial")
    if not serial or serial == compiled_serial then
        return
    end
    local version = dict:get("version")
    local tbl = cjson.decode(dict:get("json") or "")
    local built, err = _M.build(tbl)
    if not built then
        log(ERR, "route table in dict refused: ", err)
        return
    end
    current, compiled_version, compiled_serial = built, version, serial
end

-- One dict read per request keeps every worker on the newest table the moment worker 0
-- publishes it (the 0.1 s timer alone would leave a window where workers disagree).
function _M.current()
    if shared[DICT]:get("serial") ~= compiled_serial then
        _M.refresh()
    end
    return current
end

function _M.version()
    return compiled_version
end

return _M
