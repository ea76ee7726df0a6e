"""A pooled connection that Postgres dropped (a restart, a failover, an idle-connection killer) costs no
request: the pool replaces it on checkout (kernel/db.py, _check_on_checkout)."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel import db
from kernel.db import create_engine, create_session_factory
from kernel.settings import Settings
from kernel.uow import unit_of_work


@pytest.fixture
async def named_engine(settings: Settings) -> AsyncIterator[tuple[str, AsyncEngine]]:
    name = f"reconnect-test-{uuid.uuid4().hex[:8]}"  # the application_name that finds this engine's backends
    engine = create_engine(settings.model_copy(update={"service_name": name, "db_pool_size": 3, "db_max_overflow": 0}))
    try:
        yield name, engine
    finally:
        await engine.dispose()


async def _terminate_backends(db_admin: asyncpg.Pool, name: str) -> None:
    killed = await db_admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", name)
    assert killed >= 1  # the pooled connection is being ended on the server side
    # pg_terminate_backend only signals: wait until the backends have exited (and so closed their sockets).
    while await db_admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name):
        pass


async def _until_the_driver_has_read_the_close(connection: asyncpg.Connection) -> None:
    """A killed backend sends its FATAL message, then closes the socket; the driver marks the connection closed
    once its event loop has read both. Between the two the connection is neither usable nor known closed (a
    slow CI machine caught that window: "another operation is in progress"). This waits out that moment, which
    is the premise the checkout check relies on: the driver already knows."""
    async with asyncio.timeout(10):
        while not connection.is_closed():  # noqa: ASYNC110 - polls the driver
            await asyncio.sleep(0.01)  # the close arrives on the connection's own socket


async def test_a_query_after_postgres_killed_every_pooled_connection_succeeds(
        named_engine: tuple[str, AsyncEngine], db_admin: asyncpg.Pool) -> None:
    name, engine = named_engine
    sessions = create_session_factory(engine)
    async with unit_of_work(sessions) as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        pooled = (await (await session.connection()).get_raw_connection()).driver_connection
    await _terminate_backends(db_admin, name)
    await _until_the_driver_has_read_the_close(pooled)

    async with unit_of_work(sessions) as session:
        assert (await session.execute(text("SELECT 2"))).scalar_one() == 2


async def test_an_idle_connection_dropped_without_a_word_is_pinged_and_replaced(
        named_engine: tuple[str, AsyncEngine], db_admin: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection the network dropped silently still looks open to the driver: once it has been idle long
    enough, the checkout pings it, and the dead one is replaced instead of failing the request."""
    name, engine = named_engine
    sessions = create_session_factory(engine)
    async with unit_of_work(sessions) as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    await _terminate_backends(db_admin, name)
    # The driver has not noticed (a silent drop): every connection says it is open.
    monkeypatch.setattr(asyncpg.connection.Connection, "is_closed", lambda self: False)
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # "idle long enough", without waiting for it

    async with unit_of_work(sessions) as session:
        assert (await session.execute(text("SELECT 2"))).scalar_one() == 2
