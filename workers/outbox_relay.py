"""Publishes outbox rows to Kafka, in id order, then deletes them.

Woken by Postgres NOTIFY (sent by kernel.outbox.add_event at commit), with a slow poll as a safety
net. At-least-once: a crash between publish and delete republishes a batch, and consumers'
inboxes drop the duplicates. Run one relay per deployment so each aggregate's events keep their order.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from kernel.db import asyncpg_dsn
from kernel.kafka import create_producer, ensure_topics
from kernel.outbox import NOTIFY_CHANNEL
from kernel.settings import Settings
from workers.health import HealthCheck

log = logging.getLogger("nexuscart.relay")

PUBLISHED = Counter("nexuscart_outbox_published_total", "Outbox events published to Kafka", ["schema"])
FAILED_ROUNDS = Counter("nexuscart_outbox_failed_rounds_total", "Relay rounds that failed and backed off")
LAST_SUCCESS = Gauge("nexuscart_outbox_last_success_timestamp", "Unix time of the last successful relay round")


def relay_health(max_silence_seconds: float) -> HealthCheck:
    """Healthy while relay rounds keep succeeding."""

    def check() -> tuple[bool, dict[str, Any]]:
        (gauge,) = LAST_SUCCESS.collect()  # the gauge's value through prometheus_client's public API
        silence = time.time() - gauge.samples[0].value
        return silence <= max_silence_seconds, {"seconds_since_last_round": round(silence, 1)}

    return check


async def relay_batch(conn: asyncpg.Connection, producer: AIOKafkaProducer, schema: str, limit: int) -> int:
    async with conn.transaction():
        rows = await conn.fetch(
            f"SELECT id, topic, key, envelope FROM {schema}.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
        if not rows:
            return 0
        # send() only enqueues; awaiting the futures afterwards lets the producer batch the whole set.
        futures = [await producer.send(r["topic"], bytes(r["envelope"]), key=r["key"].encode()) for r in rows]
        await asyncio.gather(*futures)
        await conn.execute(f"DELETE FROM {schema}.outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
    PUBLISHED.labels(schema).inc(len(rows))
    return len(rows)


async def run_relay(settings: Settings, schemas: list[str], *, stop: asyncio.Event | None = None) -> None:
    settings.require_peers("database_url", "kafka_bootstrap_servers")
    await ensure_topics(settings.kafka_bootstrap_servers)
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    listener = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    wake = asyncio.Event()
    await listener.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
    stop = stop or asyncio.Event()
    failures = 0
    log.info("outbox relay started", extra={"schemas": schemas})
    try:
        while not stop.is_set():
            wake.clear()  # cleared before scanning, so a NOTIFY during the scan triggers another round
            try:
                published = 0
                for schema in schemas:
                    published += await relay_batch(conn, producer, schema, settings.outbox_batch_size)
                failures = 0
                LAST_SUCCESS.set_to_current_time()
            except Exception as exc:  # noqa: BLE001 - a broker or database hiccup must not stop the relay
                failures += 1
                FAILED_ROUNDS.inc()
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("relay round failed; backing off", extra={"error": repr(exc), "retry_in": delay})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)  # back off, but stop at once if asked
                continue
            if published:
                continue  # more may be waiting; drain before sleeping
            with_stop = asyncio.ensure_future(stop.wait())
            with_wake = asyncio.ensure_future(wake.wait())
            await asyncio.wait({with_stop, with_wake}, timeout=settings.outbox_idle_poll_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
            for fut in (with_stop, with_wake):
                fut.cancel()
    finally:
        await listener.close()
        await conn.close()
        await producer.stop()
