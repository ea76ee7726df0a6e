-- The W3C traceparent of the span that added the event (NULL while tracing is off, and for older rows): the relay
-- sends it as the Kafka record's `traceparent` header, so the consumer's span continues the producer's trace.
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS traceparent text;
