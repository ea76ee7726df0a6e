-- The relay marks a row published instead of deleting it, and keeps it for OUTBOX_RETENTION_SECONDS, so the
-- events still in flight can be published again when the broker comes back empty (the embedded broker keeps
-- topics in memory; a real cluster can be rebuilt). The consumers' inboxes drop what they already handled.
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS published_at timestamptz;
CREATE INDEX IF NOT EXISTS outbox_unpublished_idx ON {schema}.outbox (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published_idx ON {schema}.outbox (published_at) WHERE published_at IS NOT NULL;

-- Per topic partition, the highest offset the broker acknowledged for this schema's events, and the cluster
-- that acknowledged it: a broker whose end offset is below it (or another cluster) has lost those events.
CREATE TABLE IF NOT EXISTS {schema}.outbox_broker_marks (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    last_offset bigint      NOT NULL,
    cluster_id  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
