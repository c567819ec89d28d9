-- A minimal HTTP/1.1 client over cosockets, for timers (where ngx.location.capture is not
-- allowed): one request per connection, small bodies only (the route table, events).
local ngx = ngx
local tcp = ngx.socket.tcp
local concat = table.concat
local match = string.match
local lower = string.lower
local gmatch = string.gmatch
local tonumber = tonumber

local _M = {}

-- http://host[:port][/path], the host a name, an IPv4 address or a bracketed IPv6 one
-- (kept in brackets: that is how cosockets take it).
function _M.parse_url(url)
    local host, port, path = match(url, "^http://(%[[%x:.]+%]):?(%d*)(.*)$")
    if not host then
        host, port, path = match(url, "^http://([^:/%[]+):?(%d*)(.*)$")
    end
    if not host then
        return nil, "unsupported url " .. tostring(url)
    end
    return host, tonumber(port) or 80, path ~= "" and path or "/"
end

-- opts: url, method, headers (table), body, timeout (ms).
-- Returns status, body, headers (lower-cased names) or nil, err.
function _M.request(opts)
    local host, port, base = _M.parse_url(opts.url)
    if not host then
        return nil, port
    end
    local sock = tcp()
    local timeout = opts.timeout or 2000
    sock:settimeouts(timeout, timeout, timeout)
    local ok, err = sock:connect(host, port)
    if not ok then
        return nil, "connect " .. host .. ":" .. port .. ": " .. err
    end
    local body = opts.body or ""
    local lines = {
        (opts.method or "GET") .. " " .. (opts.path or base) .. " HTTP/1.1",
        "Host: " .. host .. ":" .. port,
        "Connection: close",
        "Content-Length: " .. #body,
    }
    for k, v in pairs(opts.headers or {}) do
        lines[#lines + 1] = k .. ": " .. v
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = body
    ok, err = sock:send(concat(lines, "\r\n"))
    if not ok then
        sock:close()
        return nil, "send: " .. err
    end
    local raw, rerr = sock:receive("*a")
    sock:close()
    if not raw then
        return nil, "receive: " .. rerr
    end
    local head, rest = match(raw, "^(.-)\r\n\r\n(.*)$")
    if not head then
        return nil, "malformed response"
    end
    local status = tonumber(match(head, "^HTTP/%d%.%d (%d%d%d)"))
    if not status then
        return nil, "malformed status line"
    end
    local headers = {}
    for name, value in gmatch(head, "\r\n([^:\r\n]+):%s*([^\r\n]*)") do
        headers[lower(name)] = value
    end
    if headers["transfer-encoding"] and lower(headers["transfer-encoding"]) == "chunked" then
        local out, pos = {}, 1
        while true do
            local size_hex, after = match(rest, "^(%x+)[^\r\n]*\r\n()", pos)
            local size = size_hex and tonumber(size_hex, 16)
            if not size or size == 0 then
                break
            end
            out[#out + 1] = rest:sub(after, after + size - 1)
            pos = after + size + 2
        end
        rest = concat(out)
    end
    return status, rest, headers
end

return _M
