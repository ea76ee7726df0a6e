"""One trace across every hop: an HTTP request's span -> the outbox row -> the relay's Kafka header -> the consumer's
span -> the next outbox row (real Postgres and Kafka); and nothing of it while tracing is off."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel import tracing
from kernel.consumer import IdempotentConsumer
from kernel.db import asyncpg_dsn, create_engine, create_session_factory
from kernel.events import EventEnvelope
from kernel.kafka import create_consumer, create_producer, ensure_topics
from kernel.migrate import migrate_all
from kernel.outbox import add_event
from kernel.settings import Settings
from tests.kernel.test_events import TOPIC, Probe
from workers.outbox_relay import relay_batch

SCHEMA = "tracing_test"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"  # the router's span, as a subgraph sees it in the request's traceparent


@pytest.fixture
async def session_factory(settings: Settings, infra: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate_all(infra.database_url, {SCHEMA: "tests.kernel.migrations"})
    await ensure_topics(settings.kafka_bootstrap_servers)
    engine = create_engine(settings)
    factory = create_session_factory(engine)
    async with factory() as session, session.begin():
        await session.execute(text(f"TRUNCATE {SCHEMA}.inbox, {SCHEMA}.outbox"))
    yield factory
    await engine.dispose()


@pytest.fixture
def exporter(settings: Settings) -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert tracing.setup_tracing("tracing-test", settings, exporter=spans)
    yield spans
    tracing.shutdown_tracing()


def endpoint_adding(session_factory: async_sessionmaker[AsyncSession], key: str) -> Any:
    """An ASGI endpoint that adds one event, behind the tracing middleware subgraphs get while tracing is on."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async with session_factory() as session, session.begin():
            await add_event(session, SCHEMA, Probe(k=key), key=key)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    return tracing.TracingMiddleware(app)


async def post(app: Any, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://subgraph") as client:
        assert (await client.post("/graphql", headers=headers)).status_code == 200


async def outbox_traceparent(session_factory: async_sessionmaker[AsyncSession], key: str) -> str | None:
    async with session_factory() as session:
        value: str | None = (await session.execute(
            text(f"SELECT traceparent FROM {SCHEMA}.outbox WHERE key = :k"), {"k": key})).scalar_one()
    return value


async def relay_and_read(settings: Settings, key: str) -> ConsumerRecord:
    """Publish the schema's outbox through the relay's batch step, and read back the record keyed `key`."""
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        assert await relay_batch(conn, producer, SCHEMA, 100) >= 1
    finally:
        await conn.close()
        await producer.stop()
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=f"test-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(20):  # a bound for a lost record
            async for record in consumer:
                if record.key == key.encode():
                    return record
    finally:
        await consumer.stop()
    raise AssertionError("unreachable")


async def consume(settings: Settings, session_factory: async_sessionmaker[AsyncSession], record: ConsumerRecord,
                  next_key: str) -> None:
    """Apply `record` the way a worker does, with a handler that adds the saga's next event."""
    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        await add_event(session, SCHEMA, Probe(k=next_key), key=next_key)

    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        consumer = IdempotentConsumer(
            name="tracing-test", schema=SCHEMA, dlq_producer=producer, session_factory=session_factory,
            consumer=create_consumer(settings.kafka_bootstrap_servers, "tracing-test", [TOPIC]), handler=handler)
        assert await consumer.process(record) == "applied"
    finally:
        await producer.stop()


async def test_one_trace_runs_from_the_request_through_kafka_to_the_next_event(
        settings: Settings, session_factory: async_sessionmaker[AsyncSession],
        exporter: InMemorySpanExporter) -> None:
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    await post(endpoint_adding(session_factory, first), {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"})

    (server,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN_ID
    server_id = f"{server.context.span_id:016x}"
    # the row names the request's span, which the relay sends on as the record's header
    assert await outbox_traceparent(session_factory, first) == f"00-{TRACE_ID}-{server_id}-01"
    record = await relay_and_read(settings, first)
    assert dict(record.headers)["traceparent"] == f"00-{TRACE_ID}-{server_id}-01".encode()

    await consume(settings, session_factory, record, second)

    (consumed,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert f"{consumed.context.trace_id:032x}" == TRACE_ID
    assert consumed.parent is not None and consumed.parent.span_id == server.context.span_id
    assert consumed.attributes is not None and consumed.attributes["messaging.destination.name"] == TOPIC
    # the handler's event continues the same trace, as the consumer span's child
    assert await outbox_traceparent(session_factory, second) == \
        f"00-{TRACE_ID}-{consumed.context.span_id:016x}-01"


async def test_while_tracing_is_off_nothing_is_recorded_sent_or_exported(
        settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> None:
    spans = InMemorySpanExporter()
    tracing.setup_tracing("tracing-test", settings, exporter=spans)
    tracing.shutdown_tracing()  # on, then off again: what was on must leave nothing behind
    assert not tracing.setup_tracing("tracing-test", settings.model_copy(update={"otel_exporter_otlp_endpoint": ""}))
    first, second = uuid.uuid4().hex, uuid.uuid4().hex

    # an incoming traceparent is ignored: no span, and the row has none
    await post(endpoint_adding(session_factory, first), {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"})
    assert await outbox_traceparent(session_factory, first) is None
    record = await relay_and_read(settings, first)
    assert not record.headers
    await consume(settings, session_factory, record, second)
    assert await outbox_traceparent(session_factory, second) is None
    assert spans.get_finished_spans() == ()


def test_tracing_switches_on_only_with_an_endpoint(settings: Settings) -> None:
    assert not tracing.setup_tracing("tracing-test", settings.model_copy(update={"otel_exporter_otlp_endpoint": ""}))
    assert not tracing.enabled() and tracing.current_traceparent() is None
    assert tracing.inject({}) == {}
    try:
        assert tracing.setup_tracing(
            "tracing-test", settings.model_copy(update={"otel_exporter_otlp_endpoint": "http://127.0.0.1:1"}))
        assert tracing.enabled()
    finally:
        tracing.shutdown_tracing()
