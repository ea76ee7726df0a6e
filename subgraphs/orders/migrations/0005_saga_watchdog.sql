-- The saga watchdog finds orders whose step has not moved for a while (an answer lost or parked on the DLQ):
-- a partial index keeps that scan to the orders still in flight.
CREATE INDEX IF NOT EXISTS order_sagas_in_flight_idx ON {schema}.order_sagas (step, updated_at)
    WHERE step IN ('PENDING', 'AWAITING_PAYMENT');
