-- The search domain's index, fed by catalog and inventory events. Extensions live in `public` (shared by the
-- database; every domain's search_path reaches it).
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;

-- unaccent() is STABLE (its dictionary could change), so it cannot appear in a generated column or an index;
-- this wrapper names the dictionary explicitly and promises immutability, the documented way around it.
CREATE OR REPLACE FUNCTION {schema}.fold(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, value)) $$;

-- The text columns repeat the arrays as plain text because array_to_string() is not immutable either.
-- One row per live product: what a shopper can find. `document` weighs name and SKUs (A) over brand and
-- category names (B), attribute values and tags (C) and the description (D); english stemming makes plural
-- and singular meet, folding makes accents not matter.
CREATE TABLE {schema}.documents (
    product_id        bigint PRIMARY KEY,
    slug              text          NOT NULL,
    name              text          NOT NULL,
    brand             text,
    description       text,
    category_id       bigint        NOT NULL,
    category_slugs    text[]        NOT NULL DEFAULT '{}',  -- the category and its ancestors, nearest first
    category_names    text[]        NOT NULL DEFAULT '{}',
    skus              text[]        NOT NULL DEFAULT '{}',
    sku_text          text          NOT NULL DEFAULT '',
    category_text     text          NOT NULL DEFAULT '',
    attributes        jsonb         NOT NULL DEFAULT '{}',
    keyword_text      text          NOT NULL DEFAULT '',  -- attribute values and tags
    min_price         numeric(12,2) NOT NULL,
    currency          char(3)       NOT NULL,
    in_stock          boolean       NOT NULL DEFAULT false,
    popularity        integer       NOT NULL DEFAULT 0,
    created_at        timestamptz   NOT NULL,
    source_updated_at timestamptz   NOT NULL,
    indexed_at        timestamptz   NOT NULL DEFAULT now(),
    document          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, {schema}.fold(name)), 'A') ||
        setweight(to_tsvector('simple'::regconfig, {schema}.fold(sku_text)), 'A') ||
        setweight(to_tsvector('english'::regconfig, {schema}.fold(coalesce(brand, ''))), 'B') ||
        setweight(to_tsvector('english'::regconfig, {schema}.fold(category_text)), 'B') ||
        setweight(to_tsvector('english'::regconfig, {schema}.fold(keyword_text)), 'C') ||
        setweight(to_tsvector('english'::regconfig, {schema}.fold(coalesce(description, ''))), 'D')
    ) STORED
);
CREATE INDEX documents_fts_idx ON {schema}.documents USING gin(document);
CREATE INDEX documents_skus_idx ON {schema}.documents USING gin(skus);
CREATE INDEX documents_attributes_idx ON {schema}.documents USING gin(attributes);
CREATE INDEX documents_category_idx ON {schema}.documents USING gin(category_slugs);
CREATE INDEX documents_price_idx ON {schema}.documents(min_price, product_id);
CREATE INDEX documents_newest_idx ON {schema}.documents(created_at DESC, product_id DESC);

-- Variant -> product, and each variant's stock (inventory.stock_changed). A stock event may arrive before the
-- product's: the row waits with product_id NULL until product.created names the variant.
CREATE TABLE {schema}.variants (
    variant_id  bigint PRIMARY KEY,
    product_id  bigint,
    available   integer     NOT NULL DEFAULT 0,
    in_stock    boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX variants_product_idx ON {schema}.variants(product_id);

-- Words shoppers may mean (folded names, brands, categories, attribute values): typo correction and
-- "did you mean" look here by trigram distance; suggestions complete from it.
-- A WORD row is one folded word; a BRAND or CATEGORY row is the folded name (words joined by spaces) with its
-- display form in `label`. "C" collation: a prefix is a plain range scan of the primary key.
CREATE TABLE {schema}.vocabulary (
    kind      text    NOT NULL,
    word      text    COLLATE "C" NOT NULL,
    label     text    NOT NULL,
    frequency integer NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, word),
    CONSTRAINT vocabulary_kind CHECK (kind IN ('WORD', 'BRAND', 'CATEGORY'))
);
CREATE INDEX vocabulary_trgm_idx ON {schema}.vocabulary USING gist(word gist_trgm_ops);
CREATE INDEX documents_name_trgm_idx ON {schema}.documents USING gin({schema}.fold(name) gin_trgm_ops);

-- Synonym groups an ADMIN manages; applied when a query is parsed, so no reindex is needed.
CREATE TABLE {schema}.synonym_groups (
    id         bigint      PRIMARY KEY,
    terms      text[]      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT synonym_group_size CHECK (cardinality(terms) >= 2)
);
CREATE INDEX synonym_groups_terms_idx ON {schema}.synonym_groups USING gin(terms);

-- What shoppers searched and clicked, for searchInsights.
CREATE TABLE {schema}.query_log (
    id           bigint      PRIMARY KEY,
    query        text        NOT NULL,
    result_count integer     NOT NULL,
    user_id      bigint,
    searched_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_log_time_idx ON {schema}.query_log(searched_at);

CREATE TABLE {schema}.clicks (
    id         bigint      PRIMARY KEY,
    query      text        NOT NULL,
    product_id bigint      NOT NULL,
    position   integer     NOT NULL,
    user_id    bigint,
    clicked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clicks_time_idx ON {schema}.clicks(clicked_at);
