"""Publishes outbox rows to Kafka in id order and marks them published; keeps them for a retention window.

Woken by Postgres NOTIFY (sent by kernel.outbox.add_event at commit), with a slow poll as a safety net.
At-least-once: a crash between publish and mark republishes a batch, and consumers' inboxes drop the
duplicates. Run one relay per deployment so each aggregate's events keep their order.

Nothing is lost when the broker is: a published row stays for `outbox_retention_seconds` (pruned in batches),
and the relay keeps, per topic partition, a mark: the end offset the broker reported at its last check plus
what the relay's publishing since must have added to it (and the broker's cluster id). When it finds a broker
that has lost records (a partition that now ends below its mark, or another cluster id: the embedded broker
keeps topics in memory, a real cluster can be rebuilt), it marks every retained row unpublished again and
publishes them anew, in id order. It looks at start-up, after any failed round (the broker may have restarted
while it was down) and every `outbox_broker_check_seconds`.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge

from kernel.db import asyncpg_dsn
from kernel.kafka import create_producer, ensure_topics
from kernel.outbox import NOTIFY_CHANNEL
from kernel.settings import Settings
from kernel.tracing import TRACEPARENT
from workers.health import HealthCheck

log = logging.getLogger("nexuscart.relay")

PUBLISHED = MetricCounter("nexuscart_outbox_published_total", "Outbox events published to Kafka", ["schema"])
REPUBLISHED = MetricCounter("nexuscart_outbox_republished_total",
                      "Outbox events marked for publishing again because the broker had lost them", ["schema"])
PRUNED = MetricCounter("nexuscart_outbox_pruned_total", "Published outbox rows deleted after the retention window",
                 ["schema"])
FAILED_ROUNDS = MetricCounter("nexuscart_outbox_failed_rounds_total", "Relay rounds that failed and backed off")
LAST_SUCCESS = Gauge("nexuscart_outbox_last_success_timestamp", "Unix time of the last successful relay round")

PRUNE_BATCH_SIZE = 5000
PARTITIONER = DefaultPartitioner()
RECORD_BATCH_BYTES = 256 * 1024


def relay_health(max_silence_seconds: float) -> HealthCheck:
    """Healthy while relay rounds keep succeeding."""

    def check() -> tuple[bool, dict[str, Any]]:
        (gauge,) = LAST_SUCCESS.collect()  # the gauge's value through prometheus_client's public API
        silence = time.time() - gauge.samples[0].value
        return silence <= max_silence_seconds, {"seconds_since_last_round": round(silence, 1)}

    return check


async def relay_batch(conn: asyncpg.Connection, producer: AIOKafkaProducer, schema: str, limit: int) -> int:
    """Publish the oldest unpublished rows (up to `limit`), mark them published, and raise each partition's
    mark by what its end offset has grown at least, all in one transaction."""
    async with conn.transaction():
        rows = await conn.fetch(
            f"SELECT id, topic, key, envelope, traceparent FROM {schema}.outbox WHERE published_at IS NULL "
            f"ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
        if not rows:
            return 0
        sent = await _send_in_batches(producer, rows)
        await conn.execute(f"UPDATE {schema}.outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                           [r["id"] for r in rows])
        # unnest: one statement for every partition (Core has no clean form for this upsert).
        await conn.execute(
            f"INSERT INTO {schema}.outbox_broker_marks AS m (topic, partition, last_offset) "
            f"SELECT t, p, n FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(t, p, n) "
            f"ON CONFLICT (topic, partition) DO UPDATE SET last_offset = m.last_offset + EXCLUDED.last_offset, "
            f"updated_at = now()",
            [t for t, _ in sent], [p for _, p in sent], list(sent.values()))
    PUBLISHED.labels(schema).inc(len(rows))
    return len(rows)


async def _send_in_batches(producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> Counter[tuple[str, int]]:
    """Send `rows` as one record batch per partition (several when one fills up), in id order within each, and
    wait until the broker has them all; returns, per (topic, partition), how far the broker's end offset has
    grown at least (see below): what the relay's marks count.

    Batches are built here rather than by send() per record: a send() per record cost the relay most of its CPU
    (a coroutine, a future and an accumulator lookup each). Partitions are chosen by the producer's own default
    partitioner (murmur2 of the key), exactly as send() would, so an aggregate's events stay on one partition.
    A row added inside a trace carries its traceparent, sent as a header so the consumer continues that trace."""
    partitions: dict[str, list[int]] = {}
    by_partition: dict[tuple[str, int], list[asyncpg.Record]] = {}
    for row in rows:
        topic = row["topic"]
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        chosen = PARTITIONER(row["key"].encode(), partitions[topic], partitions[topic])
        by_partition.setdefault((topic, chosen), []).append(row)
    futures = []
    growth: Counter[tuple[str, int]] = Counter()
    for (topic, partition), records in by_partition.items():
        batch = producer.create_batch()
        in_batch = 0
        for row in records:
            record = {"timestamp": None, "key": row["key"].encode(), "value": bytes(row["envelope"]),
                      "headers": [(TRACEPARENT, row["traceparent"].encode())] if row["traceparent"] else []}
            if batch.append(**record) is None:  # full: send it, and start the next with this record
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                in_batch = 0
                if batch.append(**record) is None:
                    raise ValueError(f"an outbox event of {len(record['value'])} bytes exceeds a record batch")
            in_batch += 1
        futures.append(await producer.send_batch(batch, topic, partition=partition))
        # The least the broker's reported end offset grows by. Not len(records): Tansu reports the end of a
        # partition as its last batch's first offset + 1 (measured: 100 records in one batch from offset 11,
        # end reported 12, until a later write), so the last batch counts as one record.
        growth[(topic, partition)] = len(records) - in_batch + 1
    await asyncio.gather(*futures)
    return growth


@dataclass(frozen=True, slots=True)
class BrokerState:
    cluster_id: str | None
    end_offsets: dict[tuple[str, int], int]  # (topic, partition) -> the offset the next record will get


async def read_broker_state(bootstrap_servers: str, topics: list[str]) -> BrokerState:
    """The broker's cluster id and the end offset of every partition of `topics` it has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        described = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    present = [TopicPartition(t["topic"], p["partition"]) for t in described if not t["error_code"]
               for p in t["partitions"]]
    ends: dict[tuple[str, int], int] = {}
    if present:
        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
        await probe.start()
        try:
            for tp, offset in (await probe.end_offsets(present)).items():
                ends[(tp.topic, tp.partition)] = offset
        finally:
            await probe.stop()
    cluster_id = cluster.get("cluster_id")
    return BrokerState(cluster_id=str(cluster_id) if cluster_id else None, end_offsets=ends)


def broker_lost_events(marks: list[asyncpg.Record], broker: BrokerState) -> bool:
    """Whether the broker lacks records it held at the last check: another cluster, or a partition that now
    ends before where it ended then (a partition it no longer has ends at 0)."""
    for mark in marks:
        if mark["cluster_id"] and broker.cluster_id and mark["cluster_id"] != broker.cluster_id:
            return True
        if broker.end_offsets.get((mark["topic"], mark["partition"]), 0) < mark["last_offset"]:
            return True
    return False


async def recover_lost_events(conn: asyncpg.Connection, bootstrap_servers: str, schemas: list[str]) -> None:
    """Compare each schema's marks with the broker. If it lost records, mark every schema's retained rows
    unpublished (the main loop then publishes them again, in id order) and forget the marks; otherwise bring
    the marks up to the broker's end offsets (other producers, or a broker's own offset gaps, may have put them
    beyond what this relay counted).

    A mark is the least end offset the broker must report for a partition: the end it reported at the last
    check, plus what each round published there since must have added (counted in the publishing transaction,
    so an event published a moment before the broker died is covered too, and a relay that crashed with it
    remembers)."""
    marks = {schema: await conn.fetch(f"SELECT topic, partition, last_offset, cluster_id "
                                      f"FROM {schema}.outbox_broker_marks") for schema in schemas}
    topics = {schema: {m["topic"] for m in rows} for schema, rows in marks.items()}
    broker = await read_broker_state(bootstrap_servers, sorted(set().union(*topics.values())))
    # One broker for every schema: a loss seen in any schema's marks means every schema's recent events are
    # gone too.
    lost = any(rows and broker_lost_events(rows, broker) for rows in marks.values())
    for schema in marks:
        async with conn.transaction():
            if lost:
                status = await conn.execute(
                    f"UPDATE {schema}.outbox SET published_at = NULL WHERE published_at IS NOT NULL")
                await conn.execute(f"DELETE FROM {schema}.outbox_broker_marks")
                count = int(status.split()[-1])
                REPUBLISHED.labels(schema).inc(count)
                log.warning("the broker lost published events; publishing them again",
                            extra={"schema": schema, "events": count, "cluster_id": broker.cluster_id})
                continue
            current = [(t, p, end) for (t, p), end in broker.end_offsets.items() if t in topics[schema]]
            # GREATEST: a publish that committed since the broker was read keeps its count.
            await conn.execute(
                f"UPDATE {schema}.outbox_broker_marks AS m SET last_offset = GREATEST(m.last_offset, u.o), "
                f"cluster_id = $4, updated_at = now() "
                f"FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(t, p, o) "
                f"WHERE m.topic = u.t AND m.partition = u.p",
                [c[0] for c in current], [c[1] for c in current], [c[2] for c in current], broker.cluster_id)


async def prune_published(conn: asyncpg.Connection, schemas: list[str], retention_seconds: float) -> int:
    """Delete rows published longer ago than the retention window, in batches so no statement holds many locks."""
    total = 0
    for schema in schemas:
        while True:
            status = await conn.execute(
                f"DELETE FROM {schema}.outbox WHERE id IN (SELECT id FROM {schema}.outbox "
                f"WHERE published_at < now() - make_interval(secs => $1) LIMIT $2)",
                float(retention_seconds), PRUNE_BATCH_SIZE)
            deleted = int(status.split()[-1])
            PRUNED.labels(schema).inc(deleted)
            total += deleted
            if deleted < PRUNE_BATCH_SIZE:
                break
    return total


class SchemasDue:
    """Which schemas' outboxes the next round reads. `add_event`'s NOTIFY names its schema, so a round reads the
    outboxes named since the last one, and those whose batch was full (more is waiting), not all of them: an
    order touches a few domains, and reading every outbox on every wake was most of the relay's and Postgres'
    statements per order (37 of 47 transactions, measured with pg_stat_statements). Every schema is due at
    start, after a failed round or a broker check (rows may have been marked unpublished again), on a NOTIFY
    that names no known schema, and on the idle poll: the safety net for a NOTIFY lost with the listener's
    connection."""

    def __init__(self, schemas: list[str]) -> None:
        self.schemas = list(schemas)
        self.wake = asyncio.Event()
        self._due = set(self.schemas)

    def notified(self, payload: str) -> None:
        if payload in self.schemas:
            self._due.add(payload)
        else:
            self.all()
        self.wake.set()

    def again(self, schema: str) -> None:
        self._due.add(schema)

    def all(self) -> None:
        self._due.update(self.schemas)

    def take(self) -> list[str]:
        """The schemas due now, in their configured order; clears them and the wake-up, so a NOTIFY during the
        round makes its schema due for the next."""
        self.wake.clear()
        due = [schema for schema in self.schemas if schema in self._due]
        self._due.clear()
        return due


async def run_relay(settings: Settings, schemas: list[str], *, stop: asyncio.Event | None = None) -> None:
    settings.require_peers("database_url", "kafka_bootstrap_servers")
    await ensure_topics(settings.kafka_bootstrap_servers)
    # Record batches of up to 256 KiB (the client's default is 16 KiB): a backlog drains in a few hundred
    # requests rather than thousands, well under a broker's default 1 MiB message limit.
    producer = create_producer(settings.kafka_bootstrap_servers, max_batch_size=RECORD_BATCH_BYTES)
    await producer.start()
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    listener = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    due = SchemasDue(schemas)
    await listener.add_listener(NOTIFY_CHANNEL, lambda _conn, _pid, _channel, payload: due.notified(payload))
    stop = stop or asyncio.Event()
    failures = 0
    check_broker_at = 0.0  # at once: the broker may have restarted empty while the relay was down
    prune_at = 0.0
    log.info("outbox relay started", extra={"schemas": schemas})
    try:
        while not stop.is_set():
            try:
                if conn.is_closed():  # Postgres restarted: a fresh connection, the same work
                    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
                now = time.monotonic()
                if now >= check_broker_at:
                    await ensure_topics(settings.kafka_bootstrap_servers)  # an empty broker has none
                    await recover_lost_events(conn, settings.kafka_bootstrap_servers, schemas)
                    check_broker_at = now + settings.outbox_broker_check_seconds
                    due.all()
                if now >= prune_at:
                    await prune_published(conn, schemas, settings.outbox_retention_seconds)
                    prune_at = now + settings.outbox_prune_interval_seconds
                published = 0
                for schema in due.take():
                    count = await relay_batch(conn, producer, schema, settings.outbox_batch_size)
                    if count >= settings.outbox_batch_size:
                        due.again(schema)  # a full batch: more may be waiting (a row committed since notifies)
                    published += count
                failures = 0
                LAST_SUCCESS.set_to_current_time()
            except Exception as exc:  # noqa: BLE001 - a broker or database hiccup must not stop the relay
                failures += 1
                FAILED_ROUNDS.inc()
                check_broker_at = 0.0  # whatever failed may have restarted empty: look before publishing again
                due.all()
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("relay round failed; backing off", extra={"error": repr(exc), "retry_in": delay})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)  # back off, but stop at once if asked
                continue
            if published:
                continue  # more may be waiting; drain before sleeping
            with_stop = asyncio.ensure_future(stop.wait())
            with_wake = asyncio.ensure_future(due.wake.wait())
            await asyncio.wait({with_stop, with_wake}, timeout=settings.outbox_idle_poll_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
            for fut in (with_stop, with_wake):
                fut.cancel()
            if not due.wake.is_set():
                due.all()  # the idle poll: every outbox, in case a NOTIFY was lost
    finally:
        await listener.close()
        await conn.close()
        await producer.stop()
