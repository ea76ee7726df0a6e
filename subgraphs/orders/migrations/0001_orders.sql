-- Orders domain. `orders` is hash-partitioned by user_id: a user's orders (their list, their idempotency keys)
-- live in one partition, so the hot paths (placeOrder's conflict check, User.orders) touch one small index.
-- Rows cross partitions only for lookups by order id alone (saga events, order(id)), served by a per-partition
-- index on id.

CREATE SEQUENCE IF NOT EXISTS {schema}.order_number_seq;

CREATE TABLE {schema}.orders (
    id                  bigint        NOT NULL,
    user_id             bigint        NOT NULL,
    number              text          NOT NULL,
    status              text          NOT NULL CHECK (status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID', 'SHIPPED',
                                                                 'DELIVERED', 'CANCELLED', 'REFUNDED')),
    -- The seq of the latest history row: the conditional UPDATE bumps it, so history seqs are gapless.
    status_seq          integer       NOT NULL DEFAULT 1,
    cancellation_reason text,
    cart_id             text,
    idempotency_key     text          NOT NULL,
    -- sha256 of the placeOrder request: the same key with a different request is a CONFLICT.
    request_fingerprint bytea         NOT NULL,
    currency            char(3)       NOT NULL,
    subtotal            numeric(14,2) NOT NULL,
    discount            numeric(14,2) NOT NULL DEFAULT 0,
    total               numeric(14,2) NOT NULL,
    shipping_address    jsonb         NOT NULL,
    created_at          timestamptz   NOT NULL DEFAULT now(),
    updated_at          timestamptz   NOT NULL DEFAULT now(),
    -- Unique constraints on a partitioned table must include the partition key; both do.
    PRIMARY KEY (user_id, id),
    UNIQUE (user_id, idempotency_key)
) PARTITION BY HASH (user_id);

CREATE TABLE {schema}.orders_p0 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 0);
CREATE TABLE {schema}.orders_p1 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 1);
CREATE TABLE {schema}.orders_p2 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 2);
CREATE TABLE {schema}.orders_p3 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 3);
CREATE TABLE {schema}.orders_p4 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 4);
CREATE TABLE {schema}.orders_p5 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 5);
CREATE TABLE {schema}.orders_p6 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 6);
CREATE TABLE {schema}.orders_p7 PARTITION OF {schema}.orders FOR VALUES WITH (MODULUS 8, REMAINDER 7);

-- Lookup by order id alone (cannot be UNIQUE without the partition key; Snowflakes are unique anyway).
CREATE INDEX orders_id_idx ON {schema}.orders (id);
-- User.orders(status: ...) keyset pages.
CREATE INDEX orders_user_status_id_idx ON {schema}.orders (user_id, status, id);

-- No foreign keys to `orders`: they would have to carry user_id (the partitioned key) on every child row and
-- cost a lookup per inserted item on the hot path; rows are only ever written together in one statement.
CREATE TABLE {schema}.order_items (
    order_id    bigint        NOT NULL,
    id          bigint        NOT NULL,
    variant_id  bigint        NOT NULL,
    product_id  bigint        NOT NULL,
    sku         text          NOT NULL,
    name        text          NOT NULL,
    quantity    integer       NOT NULL CHECK (quantity > 0),
    unit_price  numeric(14,2) NOT NULL,
    line_total  numeric(14,2) NOT NULL,
    PRIMARY KEY (order_id, id)
);

CREATE TABLE {schema}.order_status_history (
    order_id    bigint      NOT NULL,
    seq         integer     NOT NULL,
    from_status text,
    to_status   text        NOT NULL,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seq)
);

-- Persisted saga state, so a restarted worker resumes: which step the order is at, the payment method to
-- charge once stock is reserved (the token is cleared as soon as the order leaves AWAITING_PAYMENT), and
-- the payment deadline the timeout sweeper watches.
CREATE TABLE {schema}.order_sagas (
    order_id         bigint      PRIMARY KEY,
    user_id          bigint      NOT NULL,
    step             text        NOT NULL,
    payment_provider text        NOT NULL,
    payment_token    text,
    payment_deadline timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX order_sagas_deadline_idx ON {schema}.order_sagas (payment_deadline)
    WHERE step = 'AWAITING_PAYMENT';
