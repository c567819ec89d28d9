-- HMAC-SHA256 and SHA-256 through the OpenSSL that nginx itself links (LuaJIT FFI): Debian
-- ships no lua-resty-string, and a C call is faster than any Lua implementation.
local ffi = require("ffi")
local C = ffi.C
local ffi_new = ffi.new
local ffi_str = ffi.string
local format = string.format
local byte = string.byte
local gsub = string.gsub

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
]]

local _M = {}

local buf = ffi_new("unsigned char[32]")
local len = ffi_new("unsigned int[1]")
local sha256_md = C.EVP_sha256()

local HEX32 = string.rep("%02x", 32)

local function to_hex(s)
    if #s == 32 then
        return format(HEX32, byte(s, 1, 32))
    end
    return (gsub(s, ".", function(c)
        return format("%02x", byte(c))
    end))
end
_M.to_hex = to_hex

function _M.hmac_sha256_hex(key, msg)
    C.HMAC(sha256_md, key, #key, msg, #msg, buf, len)
    return to_hex(ffi_str(buf, len[0]))
end

function _M.sha256_hex(msg)
    C.SHA256(msg, #msg, buf)
    return to_hex(ffi_str(buf, 32))
end

return _M
