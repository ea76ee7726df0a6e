"""Two workers whose transactions deadlock on each other (each holds a row the other needs): Postgres rolls one
back, and that event is applied again without spending an attempt, so neither event reaches the DLQ even when a
single ordinary failure would park it. Real Postgres, a real deadlock."""
from __future__ import annotations

import asyncio
import types

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kernel.consumer import IdempotentConsumer
from kernel.db import create_session_factory, is_contention, sqlstate
from kernel.events import EventEnvelope
from tests.kernel.test_consumer_outage import RecordingDlq

SCHEMA = "contention_test"


async def test_events_that_deadlock_each_other_are_both_applied_once_and_none_is_parked(
        service_engine: AsyncEngine) -> None:
    async with service_engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.execute(text(f"CREATE TABLE {SCHEMA}.inbox (consumer text, event_id uuid, "
                                f"PRIMARY KEY (consumer, event_id))"))
        await conn.execute(text(f"CREATE TABLE {SCHEMA}.counters (name text PRIMARY KEY, hits int NOT NULL)"))
        await conn.execute(text(f"INSERT INTO {SCHEMA}.counters VALUES ('a', 0), ('b', 0)"))
    try:
        both_hold_their_first_row = asyncio.Barrier(2)
        first_tries: set[str] = set()

        def handler_locking(first: str, second: str):
            async def handle(session: AsyncSession, _envelope: EventEnvelope) -> None:
                await session.execute(text(f"UPDATE {SCHEMA}.counters SET hits = hits + 1 WHERE name = :n"),
                                      {"n": first})
                if first not in first_tries:  # only the first try of each waits for the other: a deadlock
                    first_tries.add(first)
                    await both_hold_their_first_row.wait()
                await session.execute(text(f"UPDATE {SCHEMA}.counters SET hits = hits + 1 WHERE name = :n"),
                                      {"n": second})
            return handle

        dlq = RecordingDlq()
        factory = create_session_factory(service_engine)
        # max_attempts=1: an ordinary failure would park the event at once
        workers = [IdempotentConsumer(name=f"worker-{first}", schema=SCHEMA, consumer=None, dlq_producer=dlq,
                                      session_factory=factory, handler=handler_locking(first, second),
                                      max_attempts=1, backoff_base_seconds=0)
                   for first, second in (("a", "b"), ("b", "a"))]
        records = [types.SimpleNamespace(topic="t", key=b"k", value=EventEnvelope.new("t", {"n": n}).to_json())
                   for n in range(2)]

        outcomes = await asyncio.gather(*(w.process(r) for w, r in zip(workers, records, strict=True)))

        assert outcomes == ["applied", "applied"]
        assert dlq.parked == []
        async with service_engine.connect() as conn:
            hits = dict((await conn.execute(text(f"SELECT name, hits FROM {SCHEMA}.counters"))).all())
        assert hits == {"a": 2, "b": 2}  # each event's two updates, once: the rolled-back try left nothing
    finally:
        async with service_engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))


def test_a_deadlock_is_contention_and_says_its_sqlstate() -> None:
    deadlock = DBAPIError("UPDATE ...", {}, asyncpg.DeadlockDetectedError("deadlock detected"))
    assert is_contention(deadlock) and sqlstate(deadlock) == "40P01"
    assert not is_contention(DBAPIError("INSERT ...", {}, asyncpg.UniqueViolationError("duplicate key")))
    assert not is_contention(ValueError("bad payload"))
