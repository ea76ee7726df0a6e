"""A pooled connection that Postgres dropped (a restart, a failover, an idle-connection killer) costs no
request: the engine pings it on checkout and opens a fresh one."""
from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy import text

from kernel.db import create_engine, create_session_factory
from kernel.settings import Settings
from kernel.uow import unit_of_work


async def test_a_query_after_postgres_killed_every_pooled_connection_succeeds(
        settings: Settings, db_admin: asyncpg.Pool) -> None:
    name = f"reconnect-test-{uuid.uuid4().hex[:8]}"  # the application_name that finds this engine's backends
    engine = create_engine(settings.model_copy(update={"service_name": name, "db_pool_size": 3, "db_max_overflow": 0}))
    sessions = create_session_factory(engine)
    try:
        async with unit_of_work(sessions) as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        killed = await db_admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", name)
        assert killed >= 1  # the pooled connection is gone on the server side

        async with unit_of_work(sessions) as session:
            assert (await session.execute(text("SELECT 2"))).scalar_one() == 2
    finally:
        await engine.dispose()
