-- Partial refunds (payments' refundPayment) move a captured order to PARTIALLY_REFUNDED.
ALTER TABLE {schema}.orders DROP CONSTRAINT orders_status_check;
ALTER TABLE {schema}.orders ADD CONSTRAINT orders_status_check CHECK (status IN ('PENDING', 'AWAITING_PAYMENT',
    'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'REFUNDED', 'PARTIALLY_REFUNDED'));
