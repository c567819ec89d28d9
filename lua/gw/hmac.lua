-- HMAC-SHA256 and SHA-256 through the OpenSSL that nginx itself links (LuaJIT FFI): Debian
-- ships no lua-resty-string, and a C call is faster than any Lua implementation.
--
-- OpenSSL 3's one-shot HMAC() looks its algorithm up on every call, which costs more than
-- the hashing of a short message; here the key's inner and outer SHA-256 states are
-- computed once per key and copied for each message (the RFC 2104 construction).
local ffi = require("ffi")
local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_copy = ffi.copy
local format = string.format
local byte = string.byte
local char = string.char
local gsub = string.gsub
local bit = require("bit")
local bxor, band, rshift = bit.bxor, bit.band, bit.rshift
local ffi_cast = ffi.cast

ffi.cdef [[
typedef struct SHA256state_st {
    unsigned int h[8];
    unsigned int Nl, Nh;
    unsigned int data[16];
    unsigned int num, md_len;
} SHA256_CTX;
int SHA256_Init(SHA256_CTX *c);
int SHA256_Update(SHA256_CTX *c, const void *data, size_t len);
int SHA256_Final(unsigned char *md, SHA256_CTX *c);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int RAND_bytes(unsigned char *buf, int num);
]]

-- Inside nginx, OpenSSL is already loaded; under plain LuaJIT (the unit tests) load it.
local C = ffi.C
if not pcall(function() return C.SHA256_Init end) then
    C = ffi.load("crypto")
end

local _M = {}

local BLOCK = 64
local CTX_SIZE = ffi.sizeof("SHA256_CTX")
local digest = ffi_new("unsigned char[32]")
local work = ffi_new("SHA256_CTX")
local HEX_DIGITS = ffi_new("const char[16]", "0123456789abcdef")
local hex_out = ffi_new("char[64]")

-- 32 bytes at `p` as 64 hex digits.
local function hex32(p)
    for i = 0, 31 do
        local b = p[i]
        hex_out[2 * i] = HEX_DIGITS[rshift(b, 4)]
        hex_out[2 * i + 1] = HEX_DIGITS[band(b, 15)]
    end
    return ffi_str(hex_out, 64)
end

local function to_hex(s)
    if #s == 32 then
        return hex32(ffi_cast("const uint8_t *", s))
    end
    return (gsub(s, ".", function(c)
        return format("%02x", byte(c))
    end))
end
_M.to_hex = to_hex

function _M.sha256_bin(msg)
    C.SHA256(msg, #msg, digest)
    return ffi_str(digest, 32)
end

function _M.sha256_hex(msg)
    C.SHA256(msg, #msg, digest)
    return hex32(digest)
end

-- `n` bytes from OpenSSL's CSPRNG as 2n hex digits (for seeds, not for every request).
function _M.random_hex(n)
    local buf = ffi_new("unsigned char[?]", n)
    assert(C.RAND_bytes(buf, n) == 1, "RAND_bytes failed")
    return to_hex(ffi_str(buf, n))
end

local function padded(key, pad)
    local out = {}
    for i = 1, BLOCK do
        out[i] = char(bxor(byte(key, i) or 0, pad))
    end
    return table.concat(out)
end

local keys = {} -- key -> { inner state, outer state }

local function states(given)
    local s = keys[given]
    if s then
        return s
    end
    local key = given
    if #key > BLOCK then
        key = _M.sha256_bin(key)
    end
    local inner, outer = ffi_new("SHA256_CTX"), ffi_new("SHA256_CTX")
    C.SHA256_Init(inner)
    C.SHA256_Update(inner, padded(key, 0x36), BLOCK)
    C.SHA256_Init(outer)
    C.SHA256_Update(outer, padded(key, 0x5c), BLOCK)
    s = { inner, outer }
    keys[given] = s
    return s
end

-- HMAC-SHA256 of msg under key into `digest`.
local function mac(key, msg)
    local s = states(key)
    ffi_copy(work, s[1], CTX_SIZE)
    C.SHA256_Update(work, msg, #msg)
    C.SHA256_Final(digest, work)
    local inner_digest = ffi_str(digest, 32)
    ffi_copy(work, s[2], CTX_SIZE)
    C.SHA256_Update(work, inner_digest, 32)
    C.SHA256_Final(digest, work)
end

function _M.hmac_sha256_hex(key, msg)
    mac(key, msg)
    return hex32(digest)
end

function _M.hmac_sha256_bin(key, msg)
    mac(key, msg)
    return ffi_str(digest, 32)
end

return _M
