-- Product reviews. One review per (author, product); only APPROVED ones are public. `verified_purchase` is set
-- when the author has a paid order containing the product (learned from orders' events, table `purchases`),
-- whenever that arrives. `helpful_count` moves with the rows of `review_votes`, in the same statement.
-- Title and body are stored exactly as given (HTML included) and never rendered by the platform.
CREATE TABLE {schema}.reviews (
    id                 bigint      PRIMARY KEY,
    product_id         bigint      NOT NULL,
    author_id          bigint      NOT NULL,
    rating             smallint    NOT NULL,
    title              text        NOT NULL,
    body               text        NOT NULL,
    status             text        NOT NULL,
    verified_purchase  boolean     NOT NULL DEFAULT false,
    helpful_count      integer     NOT NULL DEFAULT 0,
    reply_body         text,
    reply_author_id    bigint,
    replied_at         timestamptz,
    moderated_by       bigint,
    moderated_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT review_one_per_author_and_product UNIQUE (author_id, product_id),
    CONSTRAINT review_rating CHECK (rating BETWEEN 1 AND 5),
    CONSTRAINT review_status CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    CONSTRAINT review_title_length CHECK (char_length(title) BETWEEN 1 AND 120),
    CONSTRAINT review_body_length CHECK (char_length(body) <= 5000),
    CONSTRAINT review_helpful_non_negative CHECK (helpful_count >= 0),
    CONSTRAINT review_reply_whole CHECK ((reply_body IS NULL) = (replied_at IS NULL)),
    CONSTRAINT review_reply_length CHECK (reply_body IS NULL OR char_length(reply_body) BETWEEN 1 AND 5000)
);
-- Product.reviews pages (every sort: id DESC is the tie-breaker) and the moderation queue.
CREATE INDEX reviews_product_newest_idx ON {schema}.reviews (product_id, status, id DESC);
CREATE INDEX reviews_product_helpful_idx ON {schema}.reviews (product_id, status, helpful_count DESC, id DESC);
CREATE INDEX reviews_product_rating_idx ON {schema}.reviews (product_id, status, rating, id DESC);
CREATE INDEX reviews_pending_idx ON {schema}.reviews (id) WHERE status = 'PENDING';

-- One "helpful" vote per user per review (a vote for "not helpful" is no row).
CREATE TABLE {schema}.review_votes (
    review_id   bigint      NOT NULL REFERENCES {schema}.reviews (id) ON DELETE CASCADE,
    user_id     bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (review_id, user_id)
);

-- The rating of a product as Product.rating shows it: its APPROVED reviews counted per star, maintained in the
-- same transaction as every approval, rejection, edit and deletion, so a read is one row and no aggregation.
CREATE TABLE {schema}.product_ratings (
    product_id  bigint  PRIMARY KEY,
    count       integer NOT NULL DEFAULT 0,
    rating_sum  integer NOT NULL DEFAULT 0,
    stars_1     integer NOT NULL DEFAULT 0,
    stars_2     integer NOT NULL DEFAULT 0,
    stars_3     integer NOT NULL DEFAULT 0,
    stars_4     integer NOT NULL DEFAULT 0,
    stars_5     integer NOT NULL DEFAULT 0,
    CONSTRAINT product_rating_counts CHECK (stars_1 >= 0 AND stars_2 >= 0 AND stars_3 >= 0 AND stars_4 >= 0
                                            AND stars_5 >= 0),
    CONSTRAINT product_rating_totals CHECK (count = stars_1 + stars_2 + stars_3 + stars_4 + stars_5
                                            AND rating_sum = stars_1 + 2 * stars_2 + 3 * stars_3 + 4 * stars_4
                                                             + 5 * stars_5)
);

-- This domain's copy of the catalog's products (product.created / updated / deleted): which exist, and who
-- sells each. `updated_at` orders snapshots; NULL for a row learned by asking the catalog (any event replaces
-- it). A deleted product stays deleted.
CREATE TABLE {schema}.products (
    product_id  bigint      PRIMARY KEY,
    seller_id   bigint,
    deleted     boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz
);

-- What orders' events told about an order: its products (order.placed) and whether it was paid (order.paid).
-- The two events travel on different topics and may arrive in either order; each upsert returns the merged row,
-- so whichever comes second records the purchases.
CREATE TABLE {schema}.order_facts (
    order_id     bigint      PRIMARY KEY,
    user_id      bigint      NOT NULL,
    product_ids  bigint[],
    paid_at      timestamptz
);

-- (user, product) pairs with a paid order: what makes a review a verified purchase.
CREATE TABLE {schema}.purchases (
    user_id       bigint      NOT NULL,
    product_id    bigint      NOT NULL,
    order_id      bigint      NOT NULL,
    purchased_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, product_id)
);
