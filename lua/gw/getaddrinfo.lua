-- A host name's addresses from the C library's resolver (/etc/hosts, DNS, whatever
-- nsswitch.conf says), exactly as other programs on the host would get them. getaddrinfo
-- blocks, so the gateway calls this only in nginx's thread pool (ngx.run_worker_thread from
-- lua/gw/dns.lua), never on a worker's event loop. It uses nothing of ngx: the thread's Lua
-- VM has none of it, and the unit tests run it under plain LuaJIT.
local ffi = require("ffi")
local C = ffi.C
local sort = table.sort
local concat = table.concat

ffi.cdef [[
struct gw_addrinfo {
    int ai_flags;
    int ai_family;
    int ai_socktype;
    int ai_protocol;
    unsigned int ai_addrlen;
    void *ai_addr;
    char *ai_canonname;
    struct gw_addrinfo *ai_next;
};
int getaddrinfo(const char *node, const char *service, const struct gw_addrinfo *hints,
                struct gw_addrinfo **res);
void freeaddrinfo(struct gw_addrinfo *res);
const char *gai_strerror(int errcode);
const char *inet_ntop(int af, const void *src, char *dst, unsigned int size);
]]

local AF_INET, AF_INET6, SOCK_STREAM = 2, 10, 1
-- Where the address sits inside sockaddr_in and sockaddr_in6.
local ADDR_OFFSET = { [AF_INET] = 4, [AF_INET6] = 8 }

local _M = {}

-- IPv4 addresses when the name has any, else its IPv6 ones (what Envoy calls V4_PREFERRED):
-- a name that also maps to ::1 or a v6 address the service does not listen on must not
-- send every other connection to a refused port. Sorted, so a change is a string change.
function _M.choose(v4, v6)
    local list = #v4 > 0 and v4 or v6
    local seen, out = {}, {}
    for i = 1, #list do
        if not seen[list[i]] then
            seen[list[i]] = true
            out[#out + 1] = list[i]
        end
    end
    sort(out)
    return out
end

-- Returns true and the addresses separated by spaces, or false and why.
function _M.resolve(name)
    local hints = ffi.new("struct gw_addrinfo")
    hints.ai_socktype = SOCK_STREAM
    local res = ffi.new("struct gw_addrinfo *[1]")
    local rc = C.getaddrinfo(name, nil, hints, res)
    if rc ~= 0 then
        return false, ffi.string(C.gai_strerror(rc))
    end
    local v4, v6 = {}, {}
    local buf = ffi.new("char[64]")
    local p = res[0]
    while p ~= nil do
        local offset = ADDR_OFFSET[p.ai_family]
        if offset then
            local text = C.inet_ntop(p.ai_family, ffi.cast("const char *", p.ai_addr) + offset,
                buf, 64)
            if text ~= nil then
                local list = p.ai_family == AF_INET and v4 or v6
                list[#list + 1] = ffi.string(text)
            end
        end
        p = p.ai_next
    end
    C.freeaddrinfo(res[0])
    local chosen = _M.choose(v4, v6)
    if #chosen == 0 then
        return false, "no IPv4 or IPv6 address"
    end
    return true, concat(chosen, " ")
end

return _M
