-- Every error a client sees, in SparkPost's shape, sent from one place.
local cjson = require("cjson.safe")

local ngx = ngx
local encode = cjson.encode

local _M = {}

-- status -> message, description, code (nginx's own errors included)
local KNOWN = {
    [400] = { "Bad request", "The request could not be parsed", "1400" },
    [401] = { "Unauthorized", "A valid API key or token is required", "1401" },
    [403] = { "Forbidden", "The credential does not allow this request", "1403" },
    [404] = { "Not found", "No route matches this path", "1404" },
    [405] = { "Method not allowed", "The route does not accept this method", "1405" },
    [408] = { "Request timeout", "The client did not send the request in time", "1408" },
    [411] = { "Length required",
              "This route limits request bodies: send the body with a Content-Length", "1411" },
    [413] = { "Request entity too large", "The request body is too large", "1413" },
    [414] = { "URI too long", "The request URI is too long", "1414" },
    [429] = { "Too many requests", "Rate limit exceeded", "1429" },
    [431] = { "Request header fields too large", "A request header is too large", "1431" },
    [500] = { "Internal error", "The gateway failed to process the request", "1500" },
    [501] = { "Not implemented", "The request's Transfer-Encoding is not supported", "1501" },
    [502] = { "Bad gateway", "The upstream service is unreachable", "1502" },
    [503] = { "Service unavailable", "The service is temporarily unavailable", "1503" },
    [504] = { "Gateway timeout", "The upstream service did not answer in time", "1504" },
}
_M.KNOWN = KNOWN

function _M.body(status, message, description, code)
    local known = KNOWN[status] or KNOWN[500]
    return encode({
        errors = { {
            message = message or known[1],
            description = description or message or known[2],
            code = code or known[3],
        } },
    })
end

-- A byte count as people say it (as portcullis/bodies.py says it): 50 MB, 64 KB, 1,000 bytes.
function _M.size_words(n)
    for _, unit in ipairs({ { "GB", 1073741824 }, { "MB", 1048576 }, { "KB", 1024 } }) do
        if n >= unit[2] and n % unit[2] == 0 then
            return (n / unit[2]) .. " " .. unit[1]
        end
    end
    local s = tostring(n):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
    return s .. " bytes"
end

-- A plain error value, built deep down and sent by the phase function.
function _M.new(status, message, description, code, headers)
    return { status = status, message = message, description = description, code = code,
             headers = headers }
end

local function send(status, body, headers)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body + 1
    if headers then
        for k, v in pairs(headers) do
            ngx.header[k] = v
        end
    end
    ngx.say(body)
    return ngx.exit(status)
end

-- Send an error value (from _M.new) or a raw pre-encoded body ({status=, raw=}).
function _M.send(err)
    local body = err.raw or _M.body(err.status, err.message, err.description, err.code)
    return send(err.status, body, err.headers)
end

function _M.exit(status, message, description, code, headers)
    return send(status, _M.body(status, message, description, code), headers)
end

-- The error_page target: nginx's own errors (bad request line, body too large, upstream
-- down...) become JSON with the same status. 494 is nginx's "header too large".
function _M.page()
    local status = ngx.status
    if status == 494 then
        status = 431
    end
    if not KNOWN[status] then
        status = status >= 500 and 500 or 400
    end
    local rid = ngx.ctx.request_id or ngx.var.request_id
    return send(status, _M.body(status), { ["X-Request-Id"] = rid })
end

return _M
