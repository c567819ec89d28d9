-- The caller's context: client-sent copies removed, the gateway's own set and signed for
-- one audience (the route's service) with that service's own key, derived from the root
-- secret as portcullis/derive.py derives it. The canonical string is the same as
-- portcullis/context.py's; tests/test_derive.py holds both to shared vectors.
local config = require("gw.config")
local hmac = require("gw.hmac")

local ngx = ngx
local concat = table.concat
local lower = string.lower
local sub = string.sub
local find = string.find
local match = string.match
local tostring = tostring
local ngx_time = ngx.time

local _M = {}

-- Header prefixes only the gateway may set (compared lower-cased).
local RESERVED_PREFIXES = { "x-account-", "x-subaccount-", "x-key-", "x-gateway-" }
local RESERVED_EXACT = { ["x-grants"] = true, ["x-account"] = true, ["x-subaccount"] = true }

function _M.is_reserved(name)
    name = lower(name)
    if RESERVED_EXACT[name] then
        return true
    end
    for i = 1, #RESERVED_PREFIXES do
        local p = RESERVED_PREFIXES[i]
        if sub(name, 1, #p) == p then
            return true
        end
    end
    return false
end

function _M.canonical(kid, audience, method, uri, account, subaccount, key_id, grants,
                      request_id, ts)
    return "v2\n" .. kid .. "\n" .. audience .. "\n" .. method .. "\n" .. uri .. "\n"
        .. account .. "\n" .. subaccount .. "\n" .. key_id .. "\n" .. grants .. "\n"
        .. request_id .. "\n" .. ts
end

-- Keys, as portcullis/derive.py makes them: HKDF-Expand (one SHA-256 block) of the root.
function _M.derive(root, purpose)
    return hmac.hmac_sha256_bin(root, "portcullis/" .. purpose .. "\1")
end

function _M.key_id(root)
    return sub(hmac.sha256_hex("portcullis/kid\0" .. root), 1, 8)
end

-- The signing root is the first of the configured ones (the others are still verified by
-- services while a rotation is under way; the gateway only signs).
local root, root_kid
local audience_keys = {} -- audience -> derived key, per worker

local function key_for(audience)
    local key = audience_keys[audience]
    if not key then
        if not root then
            root = match(config.signing_secret, "^%s*([^,%s]+)")
            root_kid = _M.key_id(root)
        end
        key = _M.derive(root, "context/" .. audience)
        audience_keys[audience] = key
    end
    return key
end

-- One regex over the raw header block finds whether any reserved header came at all, or an
-- X-Request-Id; only then are the headers walked (most requests carry neither, and building
-- the header table is the expensive part).
local RESERVED_RE =
    [[^(x-(account|subaccount|key|gateway)-|x-(grants|account|subaccount|request-id)\s*:)]]

-- Remove every client-sent reserved header, whatever its case and however often it came.
-- (The six context headers themselves are also replaced by proxy_set_header in nginx.conf,
-- which drops a client's header of the same name.) Returns false when the request carries
-- none of them and no X-Request-Id either: the caller need not look for one.
function _M.strip_client_headers()
    if not ngx.re.find(ngx.req.raw_header(true), RESERVED_RE, "joim") then
        return false
    end
    local headers = ngx.req.get_headers(0, true)
    for name in pairs(headers) do
        if _M.is_reserved(name) then
            ngx.req.clear_header(name)
        end
    end
    return true
end

-- Values that go into upstream headers: visible ASCII only (no CR, LF, NUL, DEL, spaces or
-- bytes above 0x7E), within a length. The auth service refuses credentials that would
-- carry anything else; this is the gateway's own check of what it is handed.
local MAX_VALUE = 256     -- a grant
local MAX_KEY_ID = 1024   -- jwt:<issuer>:<percent-encoded subject> at most
local MAX_GRANTS = 8192

local function header_safe(value, max)
    return #value > 0 and #value <= max and not find(value, "[^\33-\126]")
end

local function join(list)
    if list == nil or list == ngx.null then
        return ""
    end
    if type(list) ~= "table" then
        return nil
    end
    for i = 1, #list do
        local g = list[i]
        if type(g) ~= "string" or not header_safe(g, MAX_VALUE) or find(g, ",", 1, true) then
            return nil
        end
    end
    local joined = concat(list, ",")
    return #joined <= MAX_GRANTS and joined or nil
end

-- The context's strings of a decision, made and checked once per cached decision; nil and
-- the reason when a value could not be sent as a header.
local function strings_of(decision)
    local s = decision.context_strings
    if s == nil then
        local account = tostring(decision.account_id)
        local subaccount = decision.subaccount_id
        subaccount = (subaccount == nil or subaccount == ngx.null) and "" or tostring(subaccount)
        local key_id = tostring(decision.key_id or "")
        local grants = join(decision.grants)
        if not find(account, "^%d+$") or #account > 20 then
            s = "account_id is not a whole number"
        elseif subaccount ~= "" and (not find(subaccount, "^%d+$") or #subaccount > 20) then
            s = "subaccount_id is not a whole number"
        elseif not header_safe(key_id, MAX_KEY_ID) then
            s = "key_id is not a header-safe value"
        elseif not grants then
            s = "grants are not header-safe values"
        else
            s = { account, subaccount, key_id, grants }
        end
        decision.context_strings = s
    end
    if type(s) == "string" then
        return nil, s
    end
    return s[1], s[2], s[3], s[4]
end

-- decision: the auth service's allow (account_id, subaccount_id, key_id, grants);
-- audience: the route's service. Returns true, or nil and why the decision cannot be sent.
function _M.set(audience, decision, request_id)
    local account, subaccount, key_id, grants = strings_of(decision)
    if not account then
        return nil, subaccount
    end
    local key = key_for(audience)
    local ts = tostring(ngx_time())
    local sig = root_kid .. ":" .. hmac.hmac_sha256_hex(key, _M.canonical(root_kid, audience,
        ngx.req.get_method(), ngx.var.request_uri, account, subaccount, key_id, grants,
        request_id, ts))
    -- nginx.conf's proxy_set_header sends these variables upstream (an empty one is not
    -- sent at all): cheaper than rewriting the request's header list six times.
    local var = ngx.var
    var.gw_account = account
    var.gw_subaccount = subaccount
    var.gw_key_id = key_id
    var.gw_grants = grants
    var.gw_timestamp = ts
    var.gw_signature = sig
    return true
end

return _M
