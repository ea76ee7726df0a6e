-- Categories form a tree; `path` (slugs from the root joined by '/') orders the tree for display.
CREATE TABLE {schema}.categories (
    id          bigint PRIMARY KEY,
    parent_id   bigint REFERENCES {schema}.categories(id) ON DELETE RESTRICT,
    slug        text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    path        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT category_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    CONSTRAINT category_name_present CHECK (btrim(name) <> '')
);
CREATE INDEX categories_parent_idx ON {schema}.categories(parent_id);

-- A product is soft-deleted (deleted_at) so orders, carts and events that name it stay meaningful.
-- min_price/currency are denormalised from the variants (kept by the service) for price sorting.
CREATE TABLE {schema}.products (
    id             bigint PRIMARY KEY,
    slug           text          NOT NULL UNIQUE,
    name           text          NOT NULL,
    description    text,
    brand          text,
    category_id    bigint        NOT NULL REFERENCES {schema}.categories(id),
    seller_id      bigint        NOT NULL,
    tags           text[]        NOT NULL DEFAULT '{}',
    images         jsonb         NOT NULL DEFAULT '[]',
    specifications jsonb         NOT NULL DEFAULT '{}',
    min_price      numeric(12,2) NOT NULL,
    currency       char(3)       NOT NULL,
    created_at     timestamptz   NOT NULL DEFAULT now(),
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    CONSTRAINT product_name_present CHECK (btrim(name) <> ''),
    CONSTRAINT product_specifications_object CHECK (jsonb_typeof(specifications) = 'object'),
    CONSTRAINT product_images_array CHECK (jsonb_typeof(images) = 'array')
);
-- Keyset pagination: one index per sort order, live products only.
CREATE INDEX products_newest_idx ON {schema}.products(created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX products_price_idx ON {schema}.products(min_price, id) WHERE deleted_at IS NULL;
CREATE INDEX products_name_idx ON {schema}.products(name, id) WHERE deleted_at IS NULL;
CREATE INDEX products_category_idx ON {schema}.products(category_id) WHERE deleted_at IS NULL;
CREATE INDEX products_brand_idx ON {schema}.products(lower(brand)) WHERE deleted_at IS NULL;
CREATE INDEX products_seller_idx ON {schema}.products(seller_id);
CREATE INDEX products_tags_idx ON {schema}.products USING gin(tags);

-- SKUs are unique across the whole catalog, including variants of soft-deleted products
-- (an SKU printed on an old order must never start meaning a different item).
CREATE TABLE {schema}.product_variants (
    id          bigint PRIMARY KEY,
    product_id  bigint        NOT NULL REFERENCES {schema}.products(id) ON DELETE CASCADE,
    sku         text          NOT NULL UNIQUE,
    price       numeric(12,2) NOT NULL,
    currency    char(3)       NOT NULL,
    attributes  jsonb         NOT NULL DEFAULT '{}',
    position    integer       NOT NULL,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT variant_price_positive CHECK (price > 0),
    CONSTRAINT variant_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT variant_attributes_object CHECK (jsonb_typeof(attributes) = 'object')
);
CREATE INDEX product_variants_product_idx ON {schema}.product_variants(product_id, position);
CREATE INDEX product_variants_price_idx ON {schema}.product_variants(price, product_id);
