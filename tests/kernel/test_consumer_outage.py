"""A peer outage (Postgres or Redis restarting) delays an event; it never spends the event's attempts or parks
it on the DLQ. A failing handler still does."""
from __future__ import annotations

import types

import asyncpg
from sqlalchemy.exc import DBAPIError

from kernel.consumer import IdempotentConsumer
from kernel.db import is_outage
from kernel.events import EventEnvelope


class RecordingDlq:
    def __init__(self) -> None:
        self.parked: list[bytes] = []

    async def send_and_wait(self, _topic: str, value: bytes, **_kwargs: object) -> None:
        self.parked.append(value)


def consumer_failing_with(errors: list[BaseException], dlq: RecordingDlq) -> IdempotentConsumer:
    consumer = IdempotentConsumer(name="outage-test", schema="unused", consumer=None, dlq_producer=dlq,
                                  session_factory=None, handler=None, max_attempts=2, backoff_base_seconds=0)

    async def apply_once(_envelope: EventEnvelope) -> str:
        if errors:
            raise errors.pop(0)
        return "applied"

    consumer._apply_once = apply_once  # the database transaction itself is covered by the e2e tests
    return consumer


def record() -> types.SimpleNamespace:
    return types.SimpleNamespace(topic="t", key=b"k", value=EventEnvelope.new("t", {"n": 1}).to_json())


def test_connection_failures_are_outages_and_handler_failures_are_not() -> None:
    starting_up = asyncpg.CannotConnectNowError("the database system is not yet accepting connections")
    assert is_outage(ConnectionRefusedError())
    assert is_outage(DBAPIError("SELECT 1", {}, starting_up))
    assert is_outage(FileNotFoundError(2, "No such file or directory"))  # the server's unix socket is gone
    assert not is_outage(ValueError("bad payload"))
    assert not is_outage(FileNotFoundError(2, "No such file or directory", "/some/file"))
    assert not is_outage(asyncpg.UniqueViolationError("duplicate key"))


async def test_an_event_waits_out_an_outage_longer_than_its_attempts_and_is_applied() -> None:
    dlq = RecordingDlq()
    consumer = consumer_failing_with([ConnectionRefusedError()] * 5, dlq)  # more failures than max_attempts

    assert await consumer.process(record()) == "applied"
    assert dlq.parked == []


async def test_an_event_whose_handler_keeps_failing_is_still_parked() -> None:
    dlq = RecordingDlq()
    consumer = consumer_failing_with([ValueError("bad")] * 5, dlq)

    assert await consumer.process(record()) == "dead-lettered"
    assert len(dlq.parked) == 1
