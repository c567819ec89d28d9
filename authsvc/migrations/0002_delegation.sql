-- Delegation: who made each key (so revoking a key revokes what it made) and a cap on the
-- live keys of an account.

-- The creator: its key id, `jwt:<issuer>:<sub>` for a token, `admin` for the admin API;
-- NULL for keys made before this migration (their maker is unknown).
ALTER TABLE auth.api_keys ADD COLUMN created_by text;
-- Revoking a key walks its descendants through this index.
CREATE INDEX api_keys_created_by ON auth.api_keys (created_by) WHERE created_by IS NOT NULL;

-- Live keys (not revoked, not expired) the account may hold; NULL: the service's default
-- (AUTHSVC_MAX_KEYS).
ALTER TABLE auth.accounts ADD COLUMN max_keys integer
    CHECK (max_keys BETWEEN 1 AND 1000000);
