-- gw.context against the shared vectors (tests/vectors/context.json) that
-- portcullis/context.py and portcullis/derive.py reproduce too (tests/test_derive.py), and
-- its refusal of decisions whose values are not header-safe.
local cjson = require("cjson")

local f = assert(io.open("tests/vectors/context.json"))
local vectors = cjson.decode(f:read("*a"))
f:close()

-- The parts of ngx that gw.context reads, for one request at a time.
local request = {}
_G.ngx = {
    null = cjson.null,
    time = function() return tonumber(request.timestamp) end,
    var = {},
    req = { get_method = function() return request.method end },
}
package.loaded["gw.config"] = { signing_secret = vectors.root .. ",an-older-root" }
package.loaded["gw.context"] = nil
local context = require("gw.context")
local hmac = require("gw.hmac")

describe("the signed context", function()
    it("derives the root's key id and the gateway token as Python does", function()
        assert.are.equal(vectors.kid, context.key_id(vectors.root))
        assert.are.equal(vectors.gateway_token,
            hmac.to_hex(context.derive(vectors.root, "gateway-token")))
    end)

    for _, case in ipairs(vectors.contexts) do
        it("signs " .. case.method .. " " .. case.uri .. " for " .. case.audience, function()
            assert.are.equal(case.key_hex,
                hmac.to_hex(context.derive(vectors.root, "context/" .. case.audience)))
            assert.are.equal(case.canonical, context.canonical(case.kid, case.audience,
                case.method, case.uri, case.account, case.subaccount, case.key_id,
                case.grants, case.request_id, case.timestamp))
            request = case
            ngx.var = { request_uri = case.uri }
            local grants = {}
            for g in case.grants:gmatch("[^,]+") do
                grants[#grants + 1] = g
            end
            local decision = {
                account_id = tonumber(case.account),
                subaccount_id = case.subaccount == "" and cjson.null or tonumber(case.subaccount),
                key_id = case.key_id, grants = grants,
            }
            assert.is_true(context.set(case.audience, decision, case.request_id))
            assert.are.equal(case.signature, ngx.var.gw_signature)
            assert.are.equal(case.account, ngx.var.gw_account)
            assert.are.equal(case.grants, ngx.var.gw_grants)
        end)
    end

    local bad = {
        { "CR LF in the key id", { key_id = "k\r\nX-Account-Id: 1" } },
        { "a NUL in the key id", { key_id = "k\0" } },
        { "a DEL in a grant", { grants = { "a/b\127" } } },
        { "a space in a grant", { grants = { "a/b c" } } },
        { "a comma in a grant", { grants = { "a/b,c/d" } } },
        { "non-ASCII in a grant", { grants = { "a/\195\169" } } },
        { "a grant that is not a string", { grants = { 5 } } },
        { "grants that are not a list", { grants = "a/b" } },
        { "an overlong key id", { key_id = string.rep("k", 1025) } },
        { "an account that is not a number", { account_id = "1\r\n" } },
        { "a fractional subaccount", { subaccount_id = 1.5 } },
    }
    for _, case in ipairs(bad) do
        it("refuses a decision with " .. case[1], function()
            request = vectors.contexts[1]
            ngx.var = { request_uri = request.uri }
            local decision = { account_id = 12, subaccount_id = cjson.null, key_id = "k_1",
                               grants = { "suppression_lists/view" } }
            for k, v in pairs(case[2]) do
                decision[k] = v
            end
            local ok, why = context.set("suppression", decision, "rid-1")
            assert.is_nil(ok)
            assert.is_string(why)
            assert.is_nil(ngx.var.gw_signature)
        end)
    end
end)
