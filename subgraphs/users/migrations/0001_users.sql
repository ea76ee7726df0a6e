CREATE TABLE {schema}.users (
    id            bigint PRIMARY KEY,
    email         text        NOT NULL UNIQUE,  -- stored normalised to lower case by the service
    password_hash text        NOT NULL,
    first_name    text,
    last_name     text,
    roles         text[]      NOT NULL DEFAULT ARRAY['CUSTOMER'],
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_known CHECK (roles <@ ARRAY['CUSTOMER','SELLER','ADMIN']::text[])
);

CREATE TABLE {schema}.addresses (
    id                  bigint PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES {schema}.users(id) ON DELETE CASCADE,
    line1               text   NOT NULL,
    line2               text,
    city                text   NOT NULL,
    region              text,
    postal_code         text   NOT NULL,
    country             char(2) NOT NULL,
    is_default_shipping boolean NOT NULL DEFAULT false,
    is_default_billing  boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_user_idx ON {schema}.addresses(user_id);
-- At most one default of each kind per user, enforced by the database, not only by the service.
CREATE UNIQUE INDEX addresses_one_default_shipping ON {schema}.addresses(user_id) WHERE is_default_shipping;
CREATE UNIQUE INDEX addresses_one_default_billing ON {schema}.addresses(user_id) WHERE is_default_billing;

-- Refresh tokens are stored as SHA-256 hashes; a family is one login's chain of rotations.
CREATE TABLE {schema}.refresh_tokens (
    id          bigint PRIMARY KEY,
    token_hash  bytea       NOT NULL UNIQUE,
    family_id   uuid        NOT NULL,
    user_id     bigint      NOT NULL REFERENCES {schema}.users(id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON {schema}.refresh_tokens(family_id);
