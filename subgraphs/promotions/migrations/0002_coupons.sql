-- Coupons: what a code is worth and how often it may be redeemed. `times_redeemed` counts the redemptions
-- not released (an order cancelled gives its slot back); it only moves under the coupon row's lock, and the
-- CHECK is the last line of defence should a code path ever forget the limit.
CREATE TABLE {schema}.coupons (
    id              bigint        PRIMARY KEY,
    code            text          NOT NULL UNIQUE,      -- upper-case, [A-Z0-9_-]{3,32}
    kind            text          NOT NULL,
    value           numeric(14,2) NOT NULL,             -- PERCENT: 0 < value <= 100; FIXED: an amount in `currency`
    currency        char(3)       NOT NULL,
    min_subtotal    numeric(14,2) NOT NULL DEFAULT 0,
    starts_at       timestamptz   NOT NULL,
    ends_at         timestamptz,                        -- NULL: no end
    usage_limit     integer,                            -- NULL: unlimited
    per_user_limit  integer,                            -- NULL: unlimited
    times_redeemed  integer       NOT NULL DEFAULT 0,
    created_by      bigint,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT coupon_kind CHECK (kind IN ('PERCENT', 'FIXED')),
    CONSTRAINT coupon_code_format CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    CONSTRAINT coupon_value_positive CHECK (value > 0 AND (kind <> 'PERCENT' OR value <= 100)),
    CONSTRAINT coupon_min_subtotal_non_negative CHECK (min_subtotal >= 0),
    CONSTRAINT coupon_window CHECK (ends_at IS NULL OR ends_at > starts_at),
    CONSTRAINT coupon_limits_positive CHECK ((usage_limit IS NULL OR usage_limit > 0)
                                             AND (per_user_limit IS NULL OR per_user_limit > 0)),
    CONSTRAINT coupon_redeemed_within_limit CHECK (times_redeemed >= 0
                                                   AND (usage_limit IS NULL OR times_redeemed <= usage_limit))
);
CREATE INDEX coupons_created_idx ON {schema}.coupons (id DESC);

-- One row per placeOrder request that redeemed a code, keyed like the order itself by (user, idempotency
-- key): a replayed or concurrent duplicate request finds this row and reuses it (and its order id) instead of
-- counting twice. `order_id` is the id the order is created with; released_at is set once, when that order is
-- cancelled, and the slot returns to the coupon.
CREATE TABLE {schema}.coupon_redemptions (
    id              bigint        PRIMARY KEY,
    coupon_id       bigint        NOT NULL REFERENCES {schema}.coupons (id),
    user_id         bigint        NOT NULL,
    idempotency_key text          NOT NULL,
    order_id        bigint        NOT NULL,
    currency        char(3)       NOT NULL,
    subtotal        numeric(14,2) NOT NULL,
    discount        numeric(14,2) NOT NULL,
    redeemed_at     timestamptz   NOT NULL DEFAULT now(),
    released_at     timestamptz,
    CONSTRAINT coupon_redemption_request UNIQUE (user_id, idempotency_key),
    CONSTRAINT coupon_redemption_discount CHECK (discount >= 0 AND discount <= subtotal)
);
CREATE INDEX coupon_redemptions_order_idx ON {schema}.coupon_redemptions (order_id);
CREATE INDEX coupon_redemptions_held_idx ON {schema}.coupon_redemptions (coupon_id, user_id)
    WHERE released_at IS NULL;
