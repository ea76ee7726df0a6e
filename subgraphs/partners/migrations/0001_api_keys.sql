-- Partner API keys. Only the SHA-256 of the secret is stored: the secret itself is shown once, when the key
-- is created. `name` also names the key's persisted-document allowlist (router/operations/<name>/).
CREATE TABLE {schema}.api_keys (
    id                     bigint      PRIMARY KEY,
    name                   text        NOT NULL,
    secret_hash            text        NOT NULL UNIQUE,
    scopes                 text[]      NOT NULL,
    persisted_only         boolean     NOT NULL,
    rate_limit_per_minute  integer     NOT NULL,
    created_by             bigint,
    created_at             timestamptz NOT NULL DEFAULT now(),
    revoked_at             timestamptz,
    CONSTRAINT api_key_rate_limit_positive CHECK (rate_limit_per_minute > 0)
);
CREATE INDEX api_keys_created_idx ON {schema}.api_keys (created_at DESC);
