-- The coupon an order was placed with (upper-case code; NULL: none). The discount itself is already in
-- `discount`; promotions keeps the redemption, keyed by the same (user, idempotency key), and releases it
-- on order.cancelled.
ALTER TABLE {schema}.orders ADD COLUMN coupon_code text;
