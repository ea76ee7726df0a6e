"""Work queued with `before_commit` is the transaction's last: it sees everything the transaction wrote, commits
with it or takes it down with it, and never runs for a transaction that rolled back."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kernel.db import create_session_factory
from kernel.uow import after_commit, before_commit, unit_of_work


@pytest.fixture
async def table(db_admin: asyncpg.Pool) -> AsyncIterator[str]:
    name = f"before_commit_{uuid.uuid4().hex[:8]}"
    await db_admin.execute(f"CREATE TABLE public.{name} (n int NOT NULL)")
    yield f"public.{name}"
    await db_admin.execute(f"DROP TABLE public.{name}")


async def _rows(db_admin: asyncpg.Pool, table: str) -> list[int]:
    return [r["n"] for r in await db_admin.fetch(f"SELECT n FROM {table} ORDER BY n")]


async def test_the_work_runs_last_in_the_transaction_and_commits_with_it(service_engine: AsyncEngine,
                                                                         db_admin: asyncpg.Pool, table: str) -> None:
    seen_by_the_work: list[list[int]] = []
    after: list[list[int]] = []

    async with unit_of_work(create_session_factory(service_engine)) as session:
        async def work(session: AsyncSession = session) -> None:
            seen_by_the_work.append(list((await session.execute(text(f"SELECT n FROM {table} ORDER BY n"))).scalars()))
            await session.execute(text(f"INSERT INTO {table} VALUES (3)"))

            async def committed() -> None:
                after.append(await _rows(db_admin, table))
            after_commit(session, committed)

        await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        before_commit(session, work)
        await session.execute(text(f"INSERT INTO {table} VALUES (2)"))  # queued earlier, run later: still last
        assert await _rows(db_admin, table) == []  # nothing visible outside yet

    assert seen_by_the_work == [[1, 2]]
    assert await _rows(db_admin, table) == [1, 2, 3]
    assert after == [[1, 2, 3]]  # a callback the work queued ran once everything was committed


async def test_failing_work_rolls_the_whole_transaction_back_and_raises(service_engine: AsyncEngine,
                                                                        db_admin: asyncpg.Pool, table: str) -> None:
    callbacks: list[str] = []

    async def fails() -> None:
        raise RuntimeError("the rows disagree")

    async def callback() -> None:
        callbacks.append("ran")

    async def transaction() -> None:
        async with unit_of_work(create_session_factory(service_engine)) as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
            after_commit(session, callback)
            before_commit(session, fails)

    with pytest.raises(RuntimeError, match="the rows disagree"):
        await transaction()

    assert await _rows(db_admin, table) == []
    assert callbacks == []


async def test_a_transaction_that_rolls_back_never_runs_its_work(service_engine: AsyncEngine,
                                                                 db_admin: asyncpg.Pool, table: str) -> None:
    ran: list[str] = []

    async def work() -> None:
        ran.append("ran")

    async def refused_request() -> None:
        async with unit_of_work(create_session_factory(service_engine)) as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
            before_commit(session, work)
            raise ValueError("the request was refused")

    with pytest.raises(ValueError, match="refused"):
        await refused_request()

    assert ran == []
    assert await _rows(db_admin, table) == []
