"""Outbox relay and idempotent consumer against the real Kafka-protocol broker and Postgres."""
from __future__ import annotations

import asyncio
import dataclasses
import types
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from kernel.consumer import IdempotentConsumer
from kernel.db import asyncpg_dsn, create_engine, create_session_factory
from kernel.events import EventEnvelope, EventPayload, Id, MalformedEvent, Money, omitted_when_none, payload_types
from kernel.kafka import DLQ_TOPIC, all_topics, create_consumer, create_producer, ensure_topics
from kernel.migrate import migrate_all
from kernel.outbox import NOTIFY_CHANNEL, add_event
from workers.outbox_relay import run_relay

TEST_SCHEMA = "kernel_test"
TOPIC = "kernel.test"


@dataclasses.dataclass(frozen=True, slots=True)
class Probe(EventPayload, topic=TOPIC):
    """A payload of this test module's own topic (registered like any domain's, so ensure_topics creates it)."""
    k: str


@pytest.fixture
async def session_factory(settings, infra):
    await migrate_all(infra.database_url, {TEST_SCHEMA: "tests.kernel.migrations"})
    engine = create_engine(settings)
    factory = create_session_factory(engine)
    async with factory() as session, session.begin():
        await session.execute(text(f"TRUNCATE {TEST_SCHEMA}.applied, {TEST_SCHEMA}.inbox, {TEST_SCHEMA}.outbox"))
    yield factory
    await engine.dispose()


async def read_one(bootstrap: str, topic: str, *, match: str) -> tuple[bytes, list]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(20):  # a bound for a lost record; callers may wrap a tighter one
            async for record in consumer:
                if match.encode() in record.value:
                    return record.value, record.headers
    finally:
        await consumer.stop()
    raise AssertionError("unreachable")


async def test_relay_publishes_committed_events_and_never_rolled_back_ones(settings, session_factory) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers)
    committed_key, rolled_back_key = str(uuid.uuid4()), str(uuid.uuid4())
    async with session_factory() as session:
        async with session.begin():
            await add_event(session, TEST_SCHEMA, Probe(k=committed_key), key=committed_key)
        await session.begin()
        await add_event(session, TEST_SCHEMA, Probe(k=rolled_back_key), key=rolled_back_key)
        await session.rollback()

    stop = asyncio.Event()
    relay = asyncio.create_task(run_relay(settings, [TEST_SCHEMA], stop=stop))
    try:
        raw, _ = await read_one(settings.kafka_bootstrap_servers, TOPIC, match=committed_key)
    finally:
        stop.set()
        await relay
    envelope = EventEnvelope.from_json(raw)
    assert envelope.event_type == TOPIC and envelope.payload == {"k": committed_key}
    async with session_factory() as session:
        # published, and kept for the retention window (so a broker that loses it can be given it again)
        assert (await session.execute(text(f"SELECT count(*) FROM {TEST_SCHEMA}.outbox "
                                           f"WHERE published_at IS NULL"))).scalar_one() == 0
    # the rolled-back event never existed: nothing on the topic mentions it (checked by a full read)
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=f"test-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=2000)
        assert not any(rolled_back_key.encode() in r.value for records in batches.values() for r in records)
    finally:
        await consumer.stop()


async def test_a_committed_event_wakes_the_relay_with_its_schema(settings, session_factory, infra) -> None:
    """The relay reads only the outboxes a NOTIFY named: the outbox's trigger must name the schema."""
    listener = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(NOTIFY_CHANNEL, lambda _conn, _pid, _channel, payload: heard.put_nowait(payload))
    try:
        key = str(uuid.uuid4())
        async with session_factory() as session, session.begin():
            await add_event(session, TEST_SCHEMA, Probe(k=key), key=key)
        assert await asyncio.wait_for(heard.get(), timeout=10) == TEST_SCHEMA  # a bound, not a wait
    finally:
        await listener.close()


def recording_handler(attempts: dict[str, int]):
    """A handler that counts its attempts per event, fails on a `poison` payload, and records `amount`."""
    async def handler(session, envelope: EventEnvelope) -> None:
        attempts[envelope.event_id] = attempts.get(envelope.event_id, 0) + 1
        if envelope.payload.get("poison"):
            raise ValueError("cannot apply this event")
        await session.execute(text(f"INSERT INTO {TEST_SCHEMA}.applied VALUES (CAST(:e AS uuid), :a)"),
                              {"e": envelope.event_id, "a": envelope.payload["amount"]})
    return handler


async def test_consumer_applies_once_retries_then_dead_letters(settings, session_factory) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers)
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    attempts: dict[str, int] = {}
    handler = recording_handler(attempts)

    kafka_consumer = create_consumer(settings.kafka_bootstrap_servers, f"test-{uuid.uuid4().hex}", [TOPIC])
    consumer = IdempotentConsumer(name="kernel-test", schema=TEST_SCHEMA, consumer=kafka_consumer,
                                  dlq_producer=producer, session_factory=session_factory, handler=handler,
                                  max_attempts=3, backoff_base_seconds=0.01)
    good = EventEnvelope.new(TOPIC, {"amount": 7})
    poison = EventEnvelope.new(TOPIC, {"poison": True, "amount": 1})
    marker = uuid.uuid4().hex
    try:
        for envelope in (good, good, poison):  # `good` is delivered twice, as after a crash before commit
            await producer.send_and_wait(TOPIC, envelope.to_json(), key=b"k")
        await producer.send_and_wait(TOPIC, f"not json {marker}".encode(), key=b"k")
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


async def test_a_burst_is_applied_in_one_transaction_and_a_poison_event_does_not_sink_it(
        settings, session_factory) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers)
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    attempts: dict[str, int] = {}
    handler = recording_handler(attempts)

    topic = TOPIC
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
            while await applied() != [1, 2, 3, 4, 5]:  # noqa: ASYNC110 - polls a table, bounded by the timeout
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


async def test_a_batch_records_its_events_in_the_inbox_at_once_and_applies_each_once(session_factory) -> None:
    """One transaction for the burst: a redelivered copy inside the batch and an event applied by an earlier
    batch are both left alone, and the rest is applied once each."""
    attempts: dict[str, int] = {}
    consumer = IdempotentConsumer(name="kernel-batch", schema=TEST_SCHEMA, consumer=None, dlq_producer=None,
                                  session_factory=session_factory, handler=recording_handler(attempts))
    first, second, third = (EventEnvelope.new(TOPIC, {"amount": n}) for n in (1, 2, 3))

    def records(*envelopes: EventEnvelope) -> list[Any]:
        return [types.SimpleNamespace(topic=TOPIC, key=b"k", value=e.to_json()) for e in envelopes]

    assert await consumer._apply_together(records(first, second, first))  # the batch path, not one by one
    assert await consumer._apply_together(records(second, third))

    async with session_factory() as session:
        applied = sorted((await session.execute(text(f"SELECT amount FROM {TEST_SCHEMA}.applied"))).scalars())
    assert applied == [1, 2, 3]
    assert attempts == {first.event_id: 1, second.event_id: 1, third.event_id: 1}


async def test_a_batch_applies_only_the_newest_state_of_each_entity_of_a_latest_only_topic(session_factory) -> None:
    """latest_only: of one variant's stock snapshots in a batch only the newest is applied, the older ones are
    recorded as applied (a redelivery changes nothing), and events of other topics are all applied."""
    attempts: dict[str, int] = {}
    consumer = IdempotentConsumer(name="kernel-latest", schema=TEST_SCHEMA, consumer=None, dlq_producer=None,
                                  session_factory=session_factory, handler=recording_handler(attempts),
                                  latest_only={TOPIC: "variant"})
    other = "kernel.other"

    def stock(variant: str | None, amount: int, topic: str = TOPIC) -> EventEnvelope:
        payload: dict[str, Any] = {"amount": amount} if variant is None else {"variant": variant, "amount": amount}
        return EventEnvelope.new(topic, payload)

    a1, b1, a2, a3, b2 = stock("1", 11), stock("2", 21), stock("1", 12), stock("1", 13), stock("2", 22)
    unkeyed, counted = stock(None, 90), stock("1", 91, topic=other)

    def records(*envelopes: EventEnvelope) -> list[Any]:
        return [types.SimpleNamespace(topic=e.event_type, key=b"k", value=e.to_json()) for e in envelopes]

    # a1's redelivered copy after a3 is not newer than a3.
    assert await consumer._apply_together(records(a1, b1, unkeyed, a2, a3, counted, b2, a1))
    assert await consumer._apply_together(records(a2, b2))  # already recorded: nothing happens

    async with session_factory() as session:
        applied = sorted((await session.execute(text(f"SELECT amount FROM {TEST_SCHEMA}.applied"))).scalars())
        inbox = (await session.execute(text(
            f"SELECT count(*) FROM {TEST_SCHEMA}.inbox WHERE consumer = 'kernel-latest'"))).scalar()
    assert applied == [13, 22, 90, 91]
    assert inbox == 7
    assert set(attempts) == {a3.event_id, b2.event_id, unkeyed.event_id, counted.event_id}


async def test_different_keys_of_one_partition_are_applied_at_once_and_each_keys_events_in_order(
        session_factory) -> None:
    """key_concurrency: order A's first event cannot finish until order B's has started (one at a time, this
    would never end), and each order's own events still run one after the other."""
    log: list[tuple[str, int, str]] = []
    b_started = asyncio.Event()

    async def handler(_session, envelope: EventEnvelope) -> None:
        key, n = envelope.payload["key"], envelope.payload["n"]
        log.append((key, n, "start"))
        if key == "B":
            b_started.set()
        if (key, n) == ("A", 1):
            await b_started.wait()
        log.append((key, n, "end"))

    consumer = IdempotentConsumer(name="kernel-keys", schema=TEST_SCHEMA, consumer=None, dlq_producer=None,
                                  session_factory=session_factory, handler=handler, transaction_batch=1,
                                  key_concurrency=4)
    records = [types.SimpleNamespace(topic=TOPIC, key=key.encode(), value=EventEnvelope.new(
        TOPIC, {"key": key, "n": n}).to_json()) for key, n in (("A", 1), ("A", 2), ("B", 1), ("B", 2))]

    await asyncio.wait_for(consumer._apply_partition(records), 10)

    assert log.index(("B", 1, "start")) < log.index(("A", 1, "end"))  # at once
    for key in "AB":
        assert [(n, what) for k, n, what in log if k == key] == [(1, "start"), (1, "end"), (2, "start"), (2, "end")]


# ---- typed payloads: the wire format ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    variant_id: Id
    quantity: int


@dataclasses.dataclass(frozen=True, slots=True)
class Sample(EventPayload, topic="kernel.sample"):
    order_id: Id
    amount: Money
    at: datetime
    lines: list[Line]
    note: str | None
    coupon: str | None = None
    sale_id: Id | None = omitted_when_none()


AT = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SAMPLE = Sample(order_id=123, amount=Decimal("19.9"), at=AT, lines=[Line(variant_id=7, quantity=2)], note=None)
WIRE: dict[str, Any] = {"order_id": "123", "amount": "19.90", "at": "2030-01-02T03:04:05.678000+00:00",
                        "lines": [{"variant_id": "7", "quantity": 2}], "note": None, "coupon": None}


def test_a_payload_is_written_with_string_ids_and_two_place_amounts_and_read_back() -> None:
    assert SAMPLE.to_payload() == WIRE  # sale_id None: left out
    assert Sample.from_payload(WIRE) == dataclasses.replace(SAMPLE, amount=Decimal("19.90"))
    with_sale = dataclasses.replace(SAMPLE, sale_id=9)
    assert with_sale.to_payload() == {**WIRE, "sale_id": "9"}
    assert Sample.from_payload(with_sale.to_payload()).sale_id == 9
    # a field with a default may be missing (an event written before it existed); ints are read as ids too
    assert Sample.from_payload({k: v for k, v in WIRE.items() if k != "coupon"} | {"order_id": 123}) == \
        Sample.from_payload(WIRE)
    assert payload_types()["kernel.sample"] is Sample and "kernel.sample" in all_topics()


@pytest.mark.parametrize(("change", "message"), [
    ({"order_id": "0"}, "'order_id' is not an id"),
    ({"order_id": str(1 << 63)}, "'order_id' is not an id"),
    ({"order_id": True}, "'order_id' is not an id"),
    ({"order_id": " 12"}, "'order_id' is not an id"),
    ({"amount": "19.999"}, "'amount' is not an amount with at most 2 decimal places"),
    ({"amount": 19.9}, "'amount' is not a decimal amount"),
    ({"amount": "NaN"}, "'amount' is not an amount"),
    ({"at": "yesterday"}, "'at' "),
    ({"lines": [{"variant_id": "7", "quantity": "2"}]}, "'lines[0].quantity' is not an integer"),
    ({"lines": [{"variant_id": "7", "quantity": True}]}, "'lines[0].quantity' is not an integer"),
    ({"lines": [{"variant_id": "7"}]}, "'lines[0].quantity' is missing"),
    ({"lines": {"variant_id": "7"}}, "'lines' is not a list"),
    ({"note": 5}, "'note' is not a string"),
    ({"note": ...}, "'note' is missing"),
])
def test_a_payload_off_the_contract_is_malformed_naming_its_topic_and_field(change: dict[str, Any],
                                                                           message: str) -> None:
    payload = {k: v for k, v in {**WIRE, **change}.items() if v is not ...}
    with pytest.raises(MalformedEvent) as raised:
        Sample.from_payload(payload)
    assert str(raised.value).startswith(f"kernel.sample: {message}")


def test_one_topic_has_one_payload_type() -> None:
    with pytest.raises(TypeError, match="already has the payload"):
        @dataclasses.dataclass(frozen=True, slots=True)
        class Other(EventPayload, topic="kernel.sample"):
            order_id: Id


async def test_the_relay_keeps_each_keys_events_in_order_on_the_partition_send_would_choose(
        settings, session_factory) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers)
    run = uuid.uuid4().hex[:8]
    keys = [f"{run}-{n}" for n in range(12)]
    async with session_factory() as session, session.begin():
        for seq in range(25):  # 300 events, interleaved across the keys, in one commit (one relay round)
            for key in keys:
                await add_event(session, TEST_SCHEMA, Probe(k=f"{key}:{seq:02d}"), key=key)
    stop = asyncio.Event()
    relay = asyncio.create_task(run_relay(settings, [TEST_SCHEMA], stop=stop))
    seen: dict[str, list[tuple[int, str]]] = {}
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=f"test-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(30):  # a bound for lost records
            async for record in consumer:
                key = record.key.decode()
                if key.startswith(run):
                    seen.setdefault(key, []).append((record.partition, EventEnvelope.from_json(record.value)
                                                     .payload["k"]))
                    if sum(map(len, seen.values())) == 300:
                        break
    finally:
        await consumer.stop()
        stop.set()
        await relay
    # send() to a topic of the same partition count, which no consumer reads: where would it put each key?
    probe_topic = f"kernel.partition-probe-{run}"
    await ensure_topics(settings.kafka_bootstrap_servers, (probe_topic,))
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for key in keys:
            by_send = await (await producer.send(probe_topic, b"{}", key=key.encode()))
            assert {partition for partition, _ in seen[key]} == {by_send.partition}
            assert [k for _, k in seen[key]] == [f"{key}:{seq:02d}" for seq in range(25)]
    finally:
        await producer.stop()
