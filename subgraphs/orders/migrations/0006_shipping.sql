-- Shipping (subgraphs/shipping): the method the order ships with and what it costs. `total` already includes
-- `shipping_total` (subtotal - discount + shipping), so the saga charges it. 0 and NULL: no shipping zone
-- matched the address (or no shipping subgraph is configured), as before shipping existed.
ALTER TABLE {schema}.orders ADD COLUMN shipping_total numeric(14,2) NOT NULL DEFAULT 0;
ALTER TABLE {schema}.orders ADD COLUMN shipping_method_id bigint;
