-- Flash-sale orders are created from a promotions reservation, already AWAITING_PAYMENT: the buyer names the
-- shipping address and the payment method afterwards (payOrder), so both start empty.
ALTER TABLE {schema}.orders ALTER COLUMN shipping_address DROP NOT NULL;
ALTER TABLE {schema}.orders ADD COLUMN flash_sale_id bigint;
ALTER TABLE {schema}.order_sagas ALTER COLUMN payment_provider DROP NOT NULL;
