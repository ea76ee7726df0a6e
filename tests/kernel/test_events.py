"""Outbox relay and idempotent consumer against the real Kafka-protocol broker and Postgres."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from kernel.consumer import IdempotentConsumer
from kernel.db import create_engine, create_session_factory
from kernel.events import EventEnvelope
from kernel.kafka import DLQ_TOPIC, create_consumer, create_producer, ensure_topics
from kernel.migrate import migrate_all
from kernel.outbox import add_event
from workers.outbox_relay import run_relay

TEST_SCHEMA = "kernel_test"


@pytest.fixture
async def session_factory(settings, infra):  # noqa: ANN001
    await migrate_all(infra.database_url, {TEST_SCHEMA: "tests.kernel.migrations"})
    engine = create_engine(settings)
    factory = create_session_factory(engine)
    async with factory() as session, session.begin():
        await session.execute(text(f"TRUNCATE {TEST_SCHEMA}.applied, {TEST_SCHEMA}.inbox, {TEST_SCHEMA}.outbox"))
    yield factory
    await engine.dispose()


async def read_one(bootstrap: str, topic: str, *, match: str, timeout: float = 20) -> tuple[bytes, list]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            async for record in consumer:
                if match.encode() in record.value:
                    return record.value, record.headers
    finally:
        await consumer.stop()
    raise AssertionError("unreachable")


async def test_relay_publishes_committed_events_and_never_rolled_back_ones(settings, session_factory) -> None:  # noqa: ANN001
    await ensure_topics(settings.kafka_bootstrap_servers)
    committed_key, rolled_back_key = str(uuid.uuid4()), str(uuid.uuid4())
    async with session_factory() as session:
        async with session.begin():
            await add_event(session, TEST_SCHEMA, "product.viewed", key=committed_key, payload={"k": committed_key})
        await session.begin()
        await add_event(session, TEST_SCHEMA, "product.viewed", key=rolled_back_key, payload={"k": rolled_back_key})
        await session.rollback()

    stop = asyncio.Event()
    relay = asyncio.create_task(run_relay(settings, [TEST_SCHEMA], stop=stop))
    try:
        raw, _ = await read_one(settings.kafka_bootstrap_servers, "product.viewed", match=committed_key)
    finally:
        stop.set()
        await relay
    envelope = EventEnvelope.from_json(raw)
    assert envelope.event_type == "product.viewed" and envelope.payload == {"k": committed_key}
    async with session_factory() as session:
        assert (await session.execute(text(f"SELECT count(*) FROM {TEST_SCHEMA}.outbox"))).scalar_one() == 0
    # the rolled-back event never existed: nothing on the topic mentions it (checked by a full read)
    consumer = AIOKafkaConsumer("product.viewed", bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=f"test-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=2000)
        assert not any(rolled_back_key.encode() in r.value for records in batches.values() for r in records)
    finally:
        await consumer.stop()


async def test_consumer_applies_once_retries_then_dead_letters(settings, session_factory) -> None:  # noqa: ANN001
    await ensure_topics(settings.kafka_bootstrap_servers)
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    attempts: dict[str, int] = {}

    async def handler(session, envelope: EventEnvelope) -> None:  # noqa: ANN001
        attempts[envelope.event_id] = attempts.get(envelope.event_id, 0) + 1
        if envelope.payload.get("poison"):
            raise ValueError("cannot apply this event")
        await session.execute(text(f"INSERT INTO {TEST_SCHEMA}.applied VALUES (CAST(:e AS uuid), :a)"),
                              {"e": envelope.event_id, "a": envelope.payload["amount"]})

    kafka_consumer = create_consumer(settings.kafka_bootstrap_servers, f"test-{uuid.uuid4().hex}", ["product.viewed"])
    consumer = IdempotentConsumer(name="kernel-test", schema=TEST_SCHEMA, consumer=kafka_consumer,
                                  dlq_producer=producer, session_factory=session_factory, handler=handler,
                                  max_attempts=3, backoff_base_seconds=0.01)
    good = EventEnvelope.new("product.viewed", {"amount": 7})
    poison = EventEnvelope.new("product.viewed", {"poison": True, "amount": 1})
    marker = uuid.uuid4().hex
    try:
        for envelope in (good, good, poison):  # `good` is delivered twice, as after a crash before commit
            await producer.send_and_wait("product.viewed", envelope.to_json(), key=b"k")
        await producer.send_and_wait("product.viewed", f"not json {marker}".encode(), key=b"k")
        await kafka_consumer.start()
        outcomes = []
        async with asyncio.timeout(20):
            while len(outcomes) < 4:
                for records in (await kafka_consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.value in (good.to_json(), poison.to_json()) or marker.encode() in record.value:
                            outcomes.append(await consumer.process(record))
        assert outcomes == ["applied", "duplicate", "dead-lettered", "dead-lettered"]
        assert attempts == {good.event_id: 1, poison.event_id: 3}
        async with session_factory() as session:
            rows = (await session.execute(text(f"SELECT amount FROM {TEST_SCHEMA}.applied"))).scalars().all()
        assert rows == [7]  # applied exactly once
        _, headers = await read_one(settings.kafka_bootstrap_servers, DLQ_TOPIC, match=poison.event_id)
        assert dict(headers)["error"].startswith(b"ValueError")
        await read_one(settings.kafka_bootstrap_servers, DLQ_TOPIC, match=marker)
    finally:
        await kafka_consumer.stop()
        await producer.stop()


async def test_a_burst_is_applied_in_one_transaction_and_a_poison_event_does_not_sink_it(  # noqa: ANN001
        settings, session_factory) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers)
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    attempts: dict[str, int] = {}

    async def handler(session, envelope: EventEnvelope) -> None:  # noqa: ANN001
        attempts[envelope.event_id] = attempts.get(envelope.event_id, 0) + 1
        if envelope.payload.get("poison"):
            raise ValueError("cannot apply this event")
        await session.execute(text(f"INSERT INTO {TEST_SCHEMA}.applied VALUES (CAST(:e AS uuid), :a)"),
                              {"e": envelope.event_id, "a": envelope.payload["amount"]})

    topic = "product.viewed"
    kafka_consumer = create_consumer(settings.kafka_bootstrap_servers, f"test-{uuid.uuid4().hex}", [topic])
    consumer = IdempotentConsumer(name="kernel-batch", schema=TEST_SCHEMA, consumer=kafka_consumer,
                                  dlq_producer=producer, session_factory=session_factory, handler=handler,
                                  max_attempts=2, backoff_base_seconds=0.01, transaction_batch=20)
    clean = [EventEnvelope.new(topic, {"amount": n}) for n in (1, 2, 3)]
    mixed = [EventEnvelope.new(topic, {"amount": n}) for n in (4, 5)]
    poison = EventEnvelope.new(topic, {"poison": True, "amount": 0})
    runner = None
    try:
        # one key, so all of them land on one partition, in this order (with a redelivered duplicate)
        for envelope in (*clean, clean[0], mixed[0], poison, mixed[1]):
            await producer.send_and_wait(topic, envelope.to_json(), key=b"burst")
        await kafka_consumer.start()
        runner = asyncio.create_task(consumer.run())

        ours = [e.event_id for e in (*clean, *mixed)]  # the topic also holds earlier tests' events

        async def applied() -> list[int]:
            async with session_factory() as session:
                return sorted((await session.execute(text(
                    f"SELECT amount FROM {TEST_SCHEMA}.applied WHERE event_id = ANY(CAST(:ids AS uuid[]))"),
                    {"ids": ours})).scalars())

        async with asyncio.timeout(30):
            while await applied() != [1, 2, 3, 4, 5]:
                await asyncio.sleep(0.05)  # polls the table the consumer writes
            _, headers = await read_one(settings.kafka_bootstrap_servers, DLQ_TOPIC, match=poison.event_id)
        assert dict(headers)["consumer"] == b"kernel-batch"
        assert await applied() == [1, 2, 3, 4, 5]  # every good event exactly once, the duplicate dropped
        assert attempts[poison.event_id] >= 2  # retried on its own before it was parked
    finally:
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await kafka_consumer.stop()
        await producer.stop()
