"""Transactional outbox: events are rows written in the same transaction as the state change.

`add_event` only inserts; the outbox's trigger (kernel/migrations/0004) queues a NOTIFY on NOTIFY_CHANNEL
naming the schema, which Postgres delivers at commit. Nothing reaches Kafka before the transaction commits. The
relay (workers/outbox_relay.py) publishes the rows and marks them published; it keeps them for
OUTBOX_RETENTION_SECONDS, so a broker that lost them (a restart of the in-memory embedded one) is given them
again.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.events import EventEnvelope, EventPayload
from kernel.logs import correlation_id_var
from kernel.tracing import current_traceparent

NOTIFY_CHANNEL = "nexuscart_outbox"  # named again in kernel/migrations/0004_outbox_notify_trigger.sql


async def add_event(session: AsyncSession, schema: str, event: EventPayload, *, key: str | int,
                    event_version: int = 1) -> EventEnvelope:
    """Queue `event` on its payload type's topic (also the envelope's event type), keyed by the aggregate id so
    one aggregate's events stay ordered on one partition."""
    envelope = EventEnvelope.new(event.topic, event.to_payload(), correlation_id=correlation_id_var.get(),
                                 event_version=event_version)
    # The active span's traceparent (None while tracing is off): the relay passes it on as a Kafka header.
    await session.execute(
        text(f"INSERT INTO {schema}.outbox (event_id, topic, key, envelope, traceparent) "
             f"VALUES (CAST(:event_id AS uuid), :topic, :key, :envelope, :traceparent)"),
        {"event_id": envelope.event_id, "topic": event.topic, "key": str(key), "envelope": envelope.to_json(),
         "traceparent": current_traceparent()},
    )
    return envelope
