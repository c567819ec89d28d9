-- The caller's context: client-sent copies removed, the gateway's own set and signed.
-- The canonical string is the same as portcullis/context.py's; tests check they agree.
local hmac = require("gw.hmac")

local ngx = ngx
local concat = table.concat
local lower = string.lower
local sub = string.sub
local find = string.find
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

function _M.canonical(method, uri, account, subaccount, key_id, grants, request_id, ts)
    return "v1\n" .. method .. "\n" .. uri .. "\n" .. account .. "\n" .. subaccount .. "\n"
        .. key_id .. "\n" .. grants .. "\n" .. request_id .. "\n" .. ts
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

local function join(list)
    if type(list) ~= "table" then
        return ""
    end
    for i = 1, #list do
        if find(list[i], ",", 1, true) then
            return nil
        end
    end
    return concat(list, ",")
end

-- The context's strings of a decision, made once per cached decision.
local function strings_of(decision)
    local s = decision.context_strings
    if not s then
        local subaccount = decision.subaccount_id
        s = {
            tostring(decision.account_id),
            (subaccount == nil or subaccount == ngx.null) and "" or tostring(subaccount),
            tostring(decision.key_id or ""),
            join(decision.grants) or "",
        }
        decision.context_strings = s
    end
    return s[1], s[2], s[3], s[4]
end

-- decision: the auth service's allow (account_id, subaccount_id, key_id, grants).
function _M.set(secret, decision, request_id)
    local account, subaccount, key_id, grants = strings_of(decision)
    local ts = tostring(ngx_time())
    local sig = hmac.hmac_sha256_hex(secret, _M.canonical(ngx.req.get_method(),
        ngx.var.request_uri, account, subaccount, key_id, grants, request_id, ts))
    -- nginx.conf's proxy_set_header sends these variables upstream (an empty one is not
    -- sent at all): cheaper than rewriting the request's header list six times.
    local var = ngx.var
    var.gw_account = account
    var.gw_subaccount = subaccount
    var.gw_key_id = key_id
    var.gw_grants = grants
    var.gw_timestamp = ts
    var.gw_signature = sig
end

return _M
