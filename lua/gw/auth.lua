-- The decision: may this credential do this method on this resource?
--
-- Cached per worker (lrucache) and per node (gw_decisions dict) under a key built from the
-- SHA-256 of the credential (never the credential itself), the resource, the method, the
-- subaccount header and the route's grant override: everything every decision depends on.
-- A decision that depends on more (the auth service answers `"vary": ["client_ip"]` for a
-- credential bound to networks) is kept under a key that adds this request's value of each
-- such input, and the plain key holds a marker that says so: a key without restrictions
-- costs one lookup as before, a restricted one two, and an answer made for one address is
-- never served to another. Allows and denials are cached for the TTL the auth service
-- gives. When the auth service fails, a decision that expired less than `auth_stale_ttl` ago
-- is served (stale-if-error); otherwise 503, never an allow.
local cjson = require("cjson.safe")
local lrucache = require("resty.lrucache")
local config = require("gw.config")
local errors = require("gw.errors")
local hmac = require("gw.hmac")
local metrics = require("gw.metrics")
local revocation = require("gw.revocation")

local ngx = ngx
local shared = ngx.shared
local now = ngx.now
local log = ngx.log
local ERR = ngx.ERR
local capture = ngx.location.capture
local encode, decode = cjson.encode, cjson.decode
local concat = table.concat
local type = type

local _M = {}

local DICT = "gw_decisions"
local AUTH_LOCATION = "/_gw/authorize"

local lru

local RESULT_LABELS = { hit = '{result="hit"}', miss = '{result="miss"}',
    stale = '{result="stale"}' }

local function count(result)
    metrics.inc("gateway_decision_cache_total", RESULT_LABELS[result])
end

function _M.init_worker()
    lru = assert(lrucache.new(config.decision_lru_size))
end

-- The node-wide key of a question: a hash of the credential, never the credential.
local function dict_key(token, resource, method, subaccount, grants_override)
    return hmac.sha256_hex(token) .. "|" .. resource .. "|" .. method .. "|"
        .. (subaccount or "") .. "|" .. (grants_override or "")
end

-- The key suffix for this request's values of the inputs a decision varies on; nil when
-- the decision names an input this gateway does not know (the answer is then not cached).
local function vary_suffix(vary)
    if type(vary) ~= "table" or #vary == 0 then
        return nil
    end
    local parts = {}
    for i = 1, #vary do
        if vary[i] == "client_ip" then
            parts[i] = "\0ip=" .. ngx.var.remote_addr
        else
            return nil
        end
    end
    return concat(parts)
end

-- A cached entry: { status, decision or raw (the errors), expires, key_id, gen }, or a
-- marker { marker = true, vary, expires, key_id, gen } under the plain key of a question
-- whose decisions vary.
local function fresh(entry, t)
    return entry.expires > t and revocation.valid(entry)
end

local function store(key, entry)
    local ttl = entry.expires - now() + config.auth_stale_ttl
    if ttl <= 0 then
        return
    end
    local ok, err = shared[DICT]:set(key, encode(entry), ttl)
    if not ok then
        log(ERR, "gw_decisions dict: ", err)
    end
end

local function lookup(key)
    local json = shared[DICT]:get(key)
    return json and decode(json)
end

local function remember(local_key, entry)
    local ttl = entry.expires - now() + config.auth_stale_ttl
    if ttl > 0 then
        lru:set(local_key, entry, ttl)
    end
end

-- The entry under a question's keys: this worker's LRU, then (when that has nothing fresh)
-- the node's dict. `base_key` is the question's plain dict key, made here (hashing the
-- credential) only when the LRU had nothing fresh; `suffix` the values it varies on, if
-- any. Returns the entry (fresh or not, or nil) and the plain dict key if it was made.
local function find(local_key, base_key, suffix, t, token, resource, method, subaccount,
                    grants_override)
    local entry = lru:get(local_key)
    if entry and fresh(entry, t) then
        return entry, base_key
    end
    base_key = base_key or dict_key(token, resource, method, subaccount, grants_override)
    local found = lookup(suffix and base_key .. suffix or base_key)
    if found then
        remember(local_key, found)
        return found, base_key
    end
    return entry, base_key
end

-- Keep an answer under the question's plain keys, or, when it varies, under the keys with
-- this request's values and a marker under the plain ones.
local function keep(key, local_key, entry)
    local vary = entry.vary
    if vary == nil then
        store(key, entry)
        remember(local_key, entry)
        return
    end
    local suffix = vary_suffix(vary)
    if not suffix then
        log(ERR, "a decision varies on inputs this gateway does not know; not cached")
        return
    end
    local marker = { marker = true, vary = vary, expires = entry.expires,
                     key_id = entry.key_id, gen = entry.gen }
    store(key, marker)
    remember(local_key, marker)
    store(key .. suffix, entry)
    remember(local_key .. suffix, entry)
end

-- One question in flight per cache key on this node: the first request to miss asks, the
-- others wait for its answer in the shared dict (polling every few ms), so a burst of
-- requests with a new credential costs the auth service one call, not one per request.
local LOCK_TTL = 5
local WAIT_STEP = 0.002

-- `key` is the dict key waited on; when it turns out to hold a marker, the answer for this
-- request is under the key with its own values.
local function wait_for_answer(key, lock_key, t)
    local dict = shared[DICT]
    local deadline = now() + config.auth_timeout / 1000
    while now() < deadline do
        ngx.sleep(WAIT_STEP)
        local entry = lookup(key)
        if entry and entry.marker then
            local suffix = revocation.valid(entry) and vary_suffix(entry.vary)
            entry = suffix and lookup(key .. suffix)
        end
        if entry and fresh(entry, t) then
            return entry
        end
        if not dict:get(lock_key) then
            return nil -- the asker gave up (auth service failing), or asked for another
                       -- address: decide for ourselves
        end
    end
    return nil
end

-- After a failed call this worker does not ask again for a quarter second: during an outage
-- requests get their stale decision or a 503 at once instead of each waiting on a timeout.
local CIRCUIT_TTL = 0.25
local auth_down_until = 0

local function call(route, token, method, subaccount, fresh_data)
    local res = capture(AUTH_LOCATION, {
        method = ngx.HTTP_POST,
        body = encode({
            resource = route.resource,
            method = method,
            token = token,
            subaccount = subaccount or ngx.null,
            client_ip = ngx.var.remote_addr,
            grants = route.grants or ngx.null,
            fresh = fresh_data or nil,
        }),
        ctx = {},
    })
    local status = res.status
    if status ~= 200 and status ~= 400 and status ~= 401 and status ~= 403 then
        return nil, "auth service answered " .. tostring(status)
    end
    local body = decode(res.body or "")
    if type(body) ~= "table" then
        return nil, "auth service sent no JSON"
    end
    local ttl = tonumber(body.ttl) or (status == 200 and 0 or config.denial_ttl)
    local entry = {
        status = status,
        expires = now() + ttl,
        key_id = body.key_id,
        key_seq = tonumber(body.key_seq),
        vary = body.vary,
    }
    if status == 200 then
        entry.decision = body
    else
        entry.raw = encode({ errors = body.errors })
    end
    revocation.stamp(entry)
    return entry
end

-- Ask the auth service. An answer made from data older than a change of the key this node
-- has already heard of (an instance's own key cache that has not heard of it yet) is asked
-- again with `fresh`, which makes the instance read the key from the database: a revoked
-- key is never admitted again by a slower instance after the event evicted it here.
function _M.ask(route, token, method, subaccount)
    local entry, err = call(route, token, method, subaccount)
    if entry and entry.key_id and entry.key_seq
            and entry.key_seq < revocation.known_seq(entry.key_id) then
        metrics.inc("gateway_decision_reasks_total")
        entry, err = call(route, token, method, subaccount, true)
        if entry and entry.key_seq and entry.key_seq < revocation.known_seq(entry.key_id) then
            return nil, "auth service answered from data older than a known change of key "
                .. entry.key_id
        end
    end
    return entry, err
end

local function ask(route, token, method, subaccount)
    if now() < auth_down_until then
        return nil, "auth service failing (circuit open)"
    end
    local entry, err = _M.ask(route, token, method, subaccount)
    if not entry then
        auth_down_until = now() + CIRCUIT_TTL
    end
    return entry, err
end

-- Returns the allow decision, or nil and an error value for errors.send.
-- `blocked()`, asked only when no fresh decision is cached: true when the client address is
-- over its failed-authentication limit, so a credential without a cached decision is not
-- even asked about.
function _M.decide(route, blocked)
    local token = ngx.var.http_authorization
    if not token or token == "" then
        return nil, errors.new(401, "Unauthorized", "An API key is required in the "
            .. "Authorization header")
    end
    local method = ngx.req.get_method()
    local subaccount = ngx.var.http_x_msys_subaccount
    local resource = route.resource
    local grants_override = route.grants_key
    if grants_override == nil then -- once per route table
        grants_override = type(route.grants) == "table" and concat(route.grants, ",") or false
        route.grants_key = grants_override
    end
    grants_override = grants_override or nil
    -- The per-worker LRU is keyed by the request's own words (process memory, as the
    -- request itself is); only the node-wide dict, shared memory, is keyed by a hash of the
    -- credential, so the hash is computed on an LRU miss only.
    local local_key = token .. "\0" .. resource .. "\0" .. method .. "\0"
        .. (subaccount or "") .. "\0" .. (grants_override or "")
    local t = now()
    local entry, base_key = find(local_key, nil, nil, t, token, resource, method, subaccount,
        grants_override)
    -- A marker: this request's own answer is under the keys with its values of what the
    -- decision varies on.
    local suffix
    if entry and entry.marker then
        suffix = revocation.valid(entry) and vary_suffix(entry.vary) or nil
        if suffix then
            entry, base_key = find(local_key .. suffix, base_key, suffix, t, token, resource,
                method, subaccount, grants_override)
        else
            entry = nil -- the key changed since: ask again
        end
    end
    if entry and fresh(entry, t) then
        count("hit")
    elseif blocked and blocked() then
        return nil, errors.new(429, "Too many requests",
            "Too many failed authentication attempts from this address", "1429",
            { ["Retry-After"] = "60" })
    else
        count("miss")
        base_key = base_key or dict_key(token, resource, method, subaccount, grants_override)
        local key = suffix and base_key .. suffix or base_key
        local lock_key = "lock:" .. key
        local new, err
        if shared[DICT]:add(lock_key, true, LOCK_TTL) then
            -- Another request may have asked, stored and let go of the lock between our
            -- miss and our taking it: look again before asking.
            new = lookup(key)
            if not (new and not new.marker and fresh(new, t)) then
                new, err = ask(route, token, method, subaccount)
                if new then
                    keep(base_key, local_key, new)
                end
            end
            shared[DICT]:delete(lock_key)
        else
            new = wait_for_answer(key, lock_key, t)
            if not new then
                new, err = ask(route, token, method, subaccount)
                if new then
                    keep(base_key, local_key, new)
                end
            end
        end
        if new then
            entry = new
        else
            metrics.inc("gateway_auth_errors_total")
            log(ERR, "decision for ", route.name, " failed: ", err)
            if entry and revocation.valid(entry) and entry.expires + config.auth_stale_ttl > t then
                count("stale")
                ngx.ctx.stale_decision = true
            else
                return nil, errors.new(503, "Service unavailable",
                    "The authorization service is unavailable; try again shortly", "1503",
                    { ["Retry-After"] = "1" })
            end
        end
    end
    if entry.status ~= 200 then
        return nil, { status = entry.status, raw = entry.raw }
    end
    return entry.decision
end

return _M
