-- What shoppers did with products, the model's training data (and the experiments' conversions). One row per
-- interaction: `event_id` makes storing it idempotent (a re-sent event finds its row). `subject` is who did it:
-- "user:<id>" or "session:<id>" for a guest; user_id / session_id are the same ids apart. Ids only: no PII.
CREATE TABLE {schema}.interactions (
    id           bigint      PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    subject      text        NOT NULL,
    user_id      bigint,
    session_id   text,
    product_id   bigint      NOT NULL,
    kind         text        NOT NULL,
    source       text,
    occurred_at  timestamptz NOT NULL,
    CONSTRAINT interaction_kind CHECK (kind IN ('VIEW', 'CLICK', 'ADD_TO_CART', 'WISHLIST', 'PURCHASE')),
    CONSTRAINT interaction_subject CHECK (subject LIKE 'user:%' OR subject LIKE 'session:%')
);
CREATE INDEX interactions_subject_time_idx ON {schema}.interactions (subject, occurred_at);
CREATE INDEX interactions_time_idx ON {schema}.interactions (occurred_at);

-- This domain's copy of the catalog's products (product.created / updated / deleted) and of whether any of
-- their variants is in stock (inventory.stock_changed, through `variants`). `updated_at` orders catalog
-- snapshots; a deleted product stays deleted.
CREATE TABLE {schema}.products (
    product_id   bigint      PRIMARY KEY,
    category_id  bigint,
    brand        text,
    price        numeric(14, 2),
    tags         text[]      NOT NULL DEFAULT '{}',
    deleted      boolean     NOT NULL DEFAULT false,
    in_stock     boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz
);

-- Variants of those products: which product an order line (order.paid names variants) is, and the stock state
-- each variant had in its latest inventory.stock_changed. A product is in stock while any of its variants is.
-- A stock change can come before its product.created: the row is made with product_id unknown (NULL).
CREATE TABLE {schema}.variants (
    variant_id   bigint      PRIMARY KEY,
    product_id   bigint,
    in_stock     boolean     NOT NULL DEFAULT false
);
CREATE INDEX variants_product_idx ON {schema}.variants (product_id);

-- A guest session that was used signed in (trackInteraction with a sessionId and a token): training counts its
-- history as that user's.
CREATE TABLE {schema}.session_links (
    session_id   text        PRIMARY KEY,
    user_id      bigint      NOT NULL,
    linked_at    timestamptz NOT NULL DEFAULT now()
);
