-- Response cache for routes that opt in (route.cache = {ttl, methods, vary, max_body}).
--
-- The key holds the route, the account, the subaccount, the account's generation, the
-- method, the URI and the `vary` headers. Every non-safe request by an account through the
-- gateway bumps its generation twice: before it is proxied (so no read that starts during
-- the write is cached under the new generation... and stored as fresh) and again when the
-- response headers come back (so the writer's next read, which can only start after it has
-- seen the response, misses). One account never reads another's entries: the account is in
-- the key, and anonymous requests are never cached.
local cjson = require("cjson.safe")
local metrics = require("gw.metrics")

local ngx = ngx
local shared = ngx.shared
local concat = table.concat
local lower = string.lower
local find = string.find
local encode, decode = cjson.encode, cjson.decode

local _M = {}

local DICT = "gw_cache"
local SAFE = { GET = true, HEAD = true, OPTIONS = true }
local DEFAULT_MAX_BODY = 1024 * 1024
local KEPT_HEADERS = { "Content-Type", "Content-Language", "ETag", "Last-Modified" }

local function generation(account)
    return shared[DICT]:get("gen:" .. account) or 0
end

function _M.bump(account)
    shared[DICT]:incr("gen:" .. account, 1, 0)
end

function _M.is_safe(method)
    return SAFE[method] == true
end

local function key_for(route, decision, method)
    local policy = route.cache
    local parts = {
        route.name, tostring(decision.account_id), tostring(decision.subaccount_id),
        generation(decision.account_id), method, ngx.var.request_uri,
    }
    if type(policy.vary) == "table" then
        for _, h in ipairs(policy.vary) do
            parts[#parts + 1] = ngx.var["http_" .. lower(h):gsub("-", "_")] or ""
        end
    end
    return ngx.md5(concat(parts, "\0"))
end

local function cacheable_method(policy, method)
    local methods = policy.methods
    if type(methods) ~= "table" or #methods == 0 then
        return method == "GET" or method == "HEAD"
    end
    for i = 1, #methods do
        if methods[i] == method then
            return true
        end
    end
    return false
end

-- Access phase. Returns true when a hit was sent.
function _M.access(route, decision)
    local policy = route.cache
    local ctx = ngx.ctx
    local method = ngx.req.get_method()
    if not SAFE[method] then
        _M.bump(decision.account_id)
        ctx.bump_account = decision.account_id
        return false
    end
    if type(policy) ~= "table" or not cacheable_method(policy, method) then
        return false
    end
    local cc = ngx.var.http_cache_control
    if cc and (find(lower(cc), "no-cache", 1, true) or find(lower(cc), "no-store", 1, true)) then
        ctx.cache_status = "BYPASS"
        metrics.inc("gateway_response_cache_total", '{result="bypass"}')
        return false
    end
    local key = key_for(route, decision, method)
    local hit = shared[DICT]:get(key)
    local entry = hit and decode(hit)
    if not entry then
        ctx.cache_key = key
        ctx.cache_status = "MISS"
        ctx.cache_policy = policy
        metrics.inc("gateway_response_cache_total", '{result="miss"}')
        return false
    end
    metrics.inc("gateway_response_cache_total", '{result="hit"}')
    ctx.cache_status = "HIT"
    ngx.status = 200
    for name, value in pairs(entry.h) do
        ngx.header[name] = value
    end
    ngx.header["Content-Length"] = #entry.b
    if method ~= "HEAD" then
        ngx.print(entry.b)
    end
    return ngx.exit(200)
end

-- Header filter: decide whether this response may be stored.
function _M.header_filter()
    local ctx = ngx.ctx
    if ctx.bump_account then
        _M.bump(ctx.bump_account)
    end
    if ctx.cache_status then
        ngx.header["X-Cache-Status"] = ctx.cache_status
    end
    if not ctx.cache_key or ctx.cache_status ~= "MISS" then
        return
    end
    local h = ngx.header
    local cc = lower(h["Cache-Control"] or "")
    if ngx.status ~= 200 or h["Set-Cookie"] or find(cc, "private", 1, true)
        or find(cc, "no-store", 1, true) then
        ctx.cache_key = nil
        return
    end
    local kept = {}
    for _, name in ipairs(KEPT_HEADERS) do
        kept[name] = h[name]
    end
    ctx.cache_headers = kept
    ctx.cache_chunks = {}
    ctx.cache_size = 0
end

-- Body filter: collect the body (up to max_body) and store it at the end.
function _M.body_filter()
    local ctx = ngx.ctx
    local chunks = ctx.cache_chunks
    if not chunks then
        return
    end
    local chunk, eof = ngx.arg[1], ngx.arg[2]
    local max_body = ctx.cache_policy.max_body or DEFAULT_MAX_BODY
    if chunk and chunk ~= "" then
        ctx.cache_size = ctx.cache_size + #chunk
        if ctx.cache_size > max_body then
            ctx.cache_chunks = nil
            return
        end
        chunks[#chunks + 1] = chunk
    end
    if eof then
        local ok, err = shared[DICT]:set(ctx.cache_key,
            encode({ h = ctx.cache_headers, b = concat(chunks) }), ctx.cache_policy.ttl or 60)
        if not ok then
            ngx.log(ngx.WARN, "response cache store failed: ", err)
        end
        ctx.cache_chunks = nil
    end
end

return _M
