-- HMAC-SHA256 against RFC 4231's test vectors, and the canonical context string.
local hmac = require("gw.hmac")

describe("hmac", function()
    it("matches RFC 4231 test case 2", function()
        assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            hmac.hmac_sha256_hex("Jefe", "what do ya want for nothing?"))
    end)

    it("matches RFC 4231 test case 6 (a key longer than a block)", function()
        assert.are.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            hmac.hmac_sha256_hex(string.rep("\170", 131),
                "Test Using Larger Than Block-Size Key - Hash Key First"))
    end)

    it("gives the same answer on a second call with the cached key state", function()
        local a = hmac.hmac_sha256_hex("k", "message one")
        assert.are.equal(a, hmac.hmac_sha256_hex("k", "message one"))
        assert.are_not.equal(a, hmac.hmac_sha256_hex("k", "message two"))
    end)

    it("hashes with SHA-256", function()
        assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            hmac.sha256_hex("abc"))
    end)
end)
