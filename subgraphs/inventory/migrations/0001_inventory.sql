-- Warehouses are few and long-lived; `code` is the operator-facing handle (e.g. WH-EAST).
CREATE TABLE {schema}.warehouses (
    id          bigint PRIMARY KEY,
    code        text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT warehouse_code_format CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{1,31}$'),
    CONSTRAINT warehouse_name_present CHECK (btrim(name) <> '')
);

-- Inventory's projection of the catalog's variants (fed by product.created/updated): a variant must be
-- known here before stock can be adjusted for it, and it carries the low-stock alert threshold.
CREATE TABLE {schema}.variants (
    variant_id           bigint PRIMARY KEY,
    product_id           bigint      NOT NULL,
    low_stock_threshold  integer     NOT NULL DEFAULT 5,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT variant_threshold_non_negative CHECK (low_stock_threshold >= 0)
);
CREATE INDEX variants_product_idx ON {schema}.variants(product_id);

-- available = on_hand - reserved. Every change is a conditional UPDATE in the service; these CHECKs are the
-- backstop that makes overselling impossible even if a statement were wrong.
CREATE TABLE {schema}.stock_levels (
    variant_id    bigint      NOT NULL REFERENCES {schema}.variants(variant_id) ON DELETE CASCADE,
    warehouse_id  bigint      NOT NULL REFERENCES {schema}.warehouses(id) ON DELETE RESTRICT,
    on_hand       integer     NOT NULL DEFAULT 0,
    reserved      integer     NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (variant_id, warehouse_id),
    CONSTRAINT stock_on_hand_non_negative CHECK (on_hand >= 0),
    CONSTRAINT stock_reserved_non_negative CHECK (reserved >= 0),
    CONSTRAINT stock_reserved_within_on_hand CHECK (reserved <= on_hand)
);

-- One row per order: the first decision about an order (reserved, out of stock, or cancelled before any
-- reservation) is final, so a late or repeated order.placed can never reserve stock for a settled order.
CREATE TABLE {schema}.order_reservations (
    order_id    bigint PRIMARY KEY,
    outcome     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_reservation_outcome CHECK (outcome IN ('RESERVED', 'OUT_OF_STOCK', 'CANCELLED'))
);

-- The lines of a reservation, possibly split over warehouses. Status moves only forward:
-- RESERVED -> COMMITTED -> RESTOCKED, or RESERVED -> RELEASED; the service acts only on the expected status,
-- which is what makes a repeated commit or release change nothing.
CREATE TABLE {schema}.reservations (
    order_id      bigint      NOT NULL REFERENCES {schema}.order_reservations(order_id) ON DELETE CASCADE,
    variant_id    bigint      NOT NULL,
    warehouse_id  bigint      NOT NULL,
    quantity      integer     NOT NULL,
    status        text        NOT NULL DEFAULT 'RESERVED',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, variant_id, warehouse_id),
    FOREIGN KEY (variant_id, warehouse_id) REFERENCES {schema}.stock_levels(variant_id, warehouse_id),
    CONSTRAINT reservation_quantity_positive CHECK (quantity > 0),
    CONSTRAINT reservation_status CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'RESTOCKED'))
);
CREATE INDEX reservations_open_idx ON {schema}.reservations(variant_id, warehouse_id) WHERE status = 'RESERVED';

-- Audit trail of manual (and seed) changes to on_hand; actor_id is null for system writes such as the demo seed.
CREATE TABLE {schema}.stock_adjustments (
    id             bigint PRIMARY KEY,
    variant_id     bigint      NOT NULL,
    warehouse_id   bigint      NOT NULL,
    delta          integer     NOT NULL,
    reason         text        NOT NULL,
    actor_id       bigint,
    on_hand_after  integer     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (variant_id, warehouse_id) REFERENCES {schema}.stock_levels(variant_id, warehouse_id),
    CONSTRAINT adjustment_delta_non_zero CHECK (delta <> 0)
);
CREATE INDEX stock_adjustments_variant_idx ON {schema}.stock_adjustments(variant_id, created_at DESC);
