-- Events about an order that came before its order.placed (which travels on another topic): held here rather than
-- retried, and notified once order.placed is applied, by its own transaction or by the retry job (which also
-- drops those whose order.placed never came within the wait).
CREATE TABLE {schema}.early_order_events (
    event_id    uuid        PRIMARY KEY,
    order_id    bigint      NOT NULL,
    envelope    bytea       NOT NULL,  -- the event as it was consumed
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX early_order_events_order_idx ON {schema}.early_order_events (order_id);
