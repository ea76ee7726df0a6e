-- Shipping. Zones (countries, optionally regions and postal-code prefixes) and their methods, with rates; the
-- orders it may ship (learnt from orders' events) and the shipments made for them. Catalog facts it prices and
-- authorizes with (variant weights, product sellers) are its own copy, learnt from catalog's events.

-- A zone covers an address when the country is one of `countries` and, if given, the region one of `regions`
-- and the postal code (upper-case, spaces removed) starts with one of `postal_prefixes`. The most specific
-- covering zone wins (prefixes, then regions, then country only; then the oldest).
CREATE TABLE {schema}.zones (
    id               bigint      PRIMARY KEY,
    name             text        NOT NULL,
    countries        text[]      NOT NULL,
    regions          text[]      NOT NULL DEFAULT '{}',
    postal_prefixes  text[]      NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT zone_name_present CHECK (btrim(name) <> ''),
    CONSTRAINT zone_has_countries CHECK (cardinality(countries) > 0)
);

-- kind: FLAT (price), WEIGHT (price + price_per_kg per started kg), ORDER_VALUE (the price of the highest
-- `value_tiers` entry whose min_order_value the order reaches). free_above: free when the order value reaches
-- it. max_weight_grams: not offered above it. Deleted methods stay (orders name them) but are never offered.
CREATE TABLE {schema}.methods (
    id               bigint        PRIMARY KEY,
    zone_id          bigint        NOT NULL REFERENCES {schema}.zones (id) ON DELETE CASCADE,
    name             text          NOT NULL,
    carrier          text          NOT NULL,
    kind             text          NOT NULL,
    currency         char(3)       NOT NULL,
    price            numeric(14,2) NOT NULL DEFAULT 0,
    price_per_kg     numeric(14,2) NOT NULL DEFAULT 0,
    value_tiers      jsonb         NOT NULL DEFAULT '[]',
    free_above       numeric(14,2),
    max_weight_grams integer,
    min_days         integer       NOT NULL,
    max_days         integer       NOT NULL,
    deleted          boolean       NOT NULL DEFAULT false,
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT method_kind CHECK (kind IN ('FLAT', 'WEIGHT', 'ORDER_VALUE')),
    CONSTRAINT method_prices CHECK (price >= 0 AND price_per_kg >= 0 AND (free_above IS NULL OR free_above >= 0)),
    CONSTRAINT method_days CHECK (min_days >= 0 AND max_days >= min_days)
);
CREATE INDEX methods_zone_idx ON {schema}.methods (zone_id) WHERE NOT deleted;

-- Catalog facts (product.created / updated / deleted): a variant's weight, a product's seller.
CREATE TABLE {schema}.variants (
    variant_id    bigint      PRIMARY KEY,
    product_id    bigint      NOT NULL,
    weight_grams  integer     NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE TABLE {schema}.products (
    product_id  bigint      PRIMARY KEY,
    seller_id   bigint      NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Orders' facts (order.placed / order.paid / order.cancelled). status: PLACED, PAID or CANCELLED (never back:
-- a late order.placed keeps PAID; CANCELLED is final). Only PAID orders are shipped.
CREATE TABLE {schema}.orders (
    order_id    bigint      PRIMARY KEY,
    user_id     bigint      NOT NULL,
    status      text        NOT NULL,
    number      text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_status CHECK (status IN ('PLACED', 'PAID', 'CANCELLED'))
);
CREATE TABLE {schema}.order_lines (
    order_id    bigint   NOT NULL,
    item_id     bigint   NOT NULL,
    variant_id  bigint   NOT NULL,
    product_id  bigint   NOT NULL,
    sku         text     NOT NULL,
    name        text     NOT NULL,
    quantity    integer  NOT NULL,
    shipped     integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, item_id),
    CONSTRAINT line_shipped_range CHECK (shipped BETWEEN 0 AND quantity)
);

CREATE TABLE {schema}.shipments (
    id               bigint      PRIMARY KEY,
    order_id         bigint      NOT NULL,
    carrier          text        NOT NULL,
    tracking_number  text        NOT NULL,
    tracking_url     text,
    status           text        NOT NULL,
    created_by       bigint      NOT NULL,
    shipped_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CONSTRAINT shipment_status CHECK (status IN ('SHIPPED', 'DELIVERED'))
);
CREATE INDEX shipments_order_idx ON {schema}.shipments (order_id, id);
CREATE TABLE {schema}.shipment_lines (
    shipment_id  bigint  NOT NULL REFERENCES {schema}.shipments (id) ON DELETE CASCADE,
    item_id      bigint  NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, item_id)
);
