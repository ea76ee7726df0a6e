-- Flash-sale definitions. The hot state (remaining stock, per-user counts, tokens, reservations) lives in
-- Redis and is changed only by the Lua script (see lua/purchase.lua); Postgres keeps what the sale IS and
-- its lifecycle: whether inventory has set its stock aside, and the final settlement.
CREATE TABLE {schema}.flash_sales (
    id              bigint        PRIMARY KEY,
    variant_id      bigint        NOT NULL,
    product_id      bigint        NOT NULL,
    sku             text          NOT NULL,
    name            text          NOT NULL,
    currency        char(3)       NOT NULL,
    regular_price   numeric(14,2) NOT NULL,
    sale_price      numeric(14,2) NOT NULL,
    starts_at       timestamptz   NOT NULL,
    ends_at         timestamptz   NOT NULL,
    total_stock     integer       NOT NULL,
    per_user_limit  integer       NOT NULL,
    -- PENDING: inventory has not answered yet; HELD: the units are reserved in inventory and loaded into
    -- Redis; UNAVAILABLE: inventory could not set that many units aside (the sale never opens).
    stock_status    text          NOT NULL DEFAULT 'PENDING',
    sold_units      integer,      -- paid units, recorded at settlement
    settled_at      timestamptz,
    created_by      bigint,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT flash_sale_window CHECK (ends_at > starts_at),
    CONSTRAINT flash_sale_stock_positive CHECK (total_stock > 0),
    CONSTRAINT flash_sale_limit_positive CHECK (per_user_limit > 0),
    CONSTRAINT flash_sale_price_non_negative CHECK (sale_price >= 0),
    CONSTRAINT flash_sale_stock_status CHECK (stock_status IN ('PENDING', 'HELD', 'UNAVAILABLE'))
);
CREATE INDEX flash_sales_window_idx ON {schema}.flash_sales (ends_at, starts_at);
CREATE INDEX flash_sales_unsettled_idx ON {schema}.flash_sales (ends_at) WHERE settled_at IS NULL;
