-- The auth service's schema: accounts, subaccounts, API keys, JWT issuers and the
-- revocation log that gateways without Redis poll.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.accounts (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    -- the plan's rate limits as the gateway reads them; NULL: the service's default
    rate_limits jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Subaccount ids are global (never 0, which means "the primary account only").
CREATE TABLE auth.subaccounts (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES auth.accounts (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name),
    UNIQUE (account_id, id)
);

CREATE TABLE auth.api_keys (
    id            text PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES auth.accounts (id) ON DELETE CASCADE,
    subaccount_id bigint,
    label         text NOT NULL,
    prefix        text NOT NULL,            -- first characters of the key, to recognise it
    hash          bytea NOT NULL UNIQUE,    -- SHA-256 of the key; the key itself is never kept
    grants        text[] NOT NULL,
    valid_ips     text[] NOT NULL DEFAULT '{}',
    expires_at    timestamptz,
    revoked_at    timestamptz,
    rotated_to    text REFERENCES auth.api_keys (id),
    expiry_logged boolean NOT NULL DEFAULT false,  -- its expiry is in auth.revocations
    created_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, subaccount_id) REFERENCES auth.subaccounts (account_id, id)
);
CREATE INDEX api_keys_owner ON auth.api_keys (account_id, subaccount_id);
CREATE INDEX api_keys_pending_expiry ON auth.api_keys (expires_at)
    WHERE expires_at IS NOT NULL AND NOT expiry_logged AND revoked_at IS NULL;

CREATE TABLE auth.revocations (
    seq         bigserial PRIMARY KEY,
    key_id      text NOT NULL,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.issuers (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    issuer           text NOT NULL UNIQUE,      -- the `iss` claim
    account_id       bigint NOT NULL REFERENCES auth.accounts (id) ON DELETE CASCADE,
    audience         text,
    algorithms       text[] NOT NULL,
    secret           text,                      -- HS256 only; needed in clear to verify
    jwks             jsonb,                     -- static public keys, as a JWK set
    jwks_url         text,
    subaccount_claim text NOT NULL DEFAULT 'subaccount_id',
    grants_claim     text NOT NULL DEFAULT 'grants',
    allowed_grants   text[],                    -- NULL: any grant the token names
    created_at       timestamptz NOT NULL DEFAULT now()
);
