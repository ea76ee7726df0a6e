"""Inventory fixtures on top of the shared stack in tests/conftest.py: service sessions, the in-process
subgraph, and helpers that build warehouses/variants/stock and read what landed in the outbox."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kernel.db import create_engine, create_session_factory
from kernel.events import EventEnvelope
from kernel.ids import next_id
from kernel.settings import Settings
from tests.conftest import GraphQLClient, served_in_process
from tests.event_contracts import as_consumed


@pytest.fixture(scope="session")
async def service_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    # Enough connections that the concurrency tests really run their transactions side by side.
    engine = create_engine(settings.model_copy(update={"db_pool_size": 40, "db_max_overflow": 0}))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(service_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(service_engine)


@pytest.fixture(scope="session")
async def inventory_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    from subgraphs.inventory.app import build_app
    async with served_in_process(build_app(settings)) as http:
        yield GraphQLClient(http, "/graphql")


class Stock:
    """Builds inventory state through the service layer (committed), and reads it back raw."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], db: asyncpg.Pool) -> None:
        self.sessions = sessions
        self.db = db

    async def warehouse(self, code: str | None = None) -> int:
        warehouse_id = next_id()
        await self.db.execute("INSERT INTO inventory.warehouses (id, code, name) VALUES ($1, $2, $3)",
                              warehouse_id, code or f"WH-{warehouse_id % 10**8}", "Test warehouse")
        return warehouse_id

    async def variant(self, levels: dict[int, int] | None = None, *, threshold: int = 5) -> int:
        """A registered variant with `levels` {warehouse_id: on_hand}."""
        from subgraphs.inventory import service
        variant_id = next_id()
        async with self.sessions() as session, session.begin():
            await service.register_variants(session, [(next_id(), variant_id)])
        await self.db.execute("UPDATE inventory.variants SET low_stock_threshold = $2 WHERE variant_id = $1",
                              variant_id, threshold)
        for warehouse_id, on_hand in (levels or {}).items():
            await self.db.execute(
                "INSERT INTO inventory.stock_levels (variant_id, warehouse_id, on_hand) VALUES ($1, $2, $3) "
                "ON CONFLICT (variant_id, warehouse_id) DO UPDATE SET on_hand = EXCLUDED.on_hand",
                variant_id, warehouse_id, on_hand)
        await self.db.execute("DELETE FROM inventory.outbox")  # tests look at the events of their `when` only
        return variant_id

    async def row(self, variant_id: int, warehouse_id: int) -> tuple[int, int]:
        r = await self.db.fetchrow("SELECT on_hand, reserved FROM inventory.stock_levels "
                                   "WHERE variant_id = $1 AND warehouse_id = $2", variant_id, warehouse_id)
        assert r is not None, "no stock row"
        return r["on_hand"], r["reserved"]

    async def totals(self, variant_id: int) -> tuple[int, int]:
        r = await self.db.fetchrow("SELECT coalesce(sum(on_hand), 0) AS o, coalesce(sum(reserved), 0) AS r "
                                   "FROM inventory.stock_levels WHERE variant_id = $1", variant_id)
        return int(r["o"]), int(r["r"])

    async def reservations(self, order_id: int) -> list[tuple[int, int, int, str]]:
        rows = await self.db.fetch("SELECT variant_id, warehouse_id, quantity, status FROM inventory.reservations "
                                   "WHERE order_id = $1 ORDER BY variant_id, warehouse_id", order_id)
        return [(r["variant_id"], r["warehouse_id"], r["quantity"], r["status"]) for r in rows]

    async def events(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Outbox envelopes in insertion order (each with `key` added), optionally of one topic."""
        rows = await self.db.fetch("SELECT topic, key, envelope FROM inventory.outbox "
                                   "WHERE $1::text IS NULL OR topic = $1 ORDER BY id", topic)
        events = [{**orjson.loads(r["envelope"]), "key": r["key"]} for r in rows]
        for event in events:  # every payload inventory wrote is one its consumers accept
            as_consumed(event["event_type"], event["payload"])
        return events

    async def payloads(self, topic: str) -> list[dict[str, Any]]:
        return [e["payload"] for e in await self.events(topic)]


@pytest.fixture
def stock(sessions: async_sessionmaker[AsyncSession], db_admin: asyncpg.Pool) -> Stock:
    return Stock(sessions, db_admin)


@pytest.fixture
def deliver(sessions: async_sessionmaker[AsyncSession]) -> Callable[..., Any]:
    """deliver("order.placed", payload) -> runs the inventory consumer's dispatching handler in its own
    committed transaction, as the worker does (inbox aside)."""
    from kernel.consumer import WorkerResources
    from subgraphs.inventory.consumers import consumer_specs

    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))

    async def run(event_type: str, payload: dict[str, Any]) -> EventEnvelope:
        envelope = EventEnvelope.new(event_type, payload)
        async with sessions() as session, session.begin():
            await spec.handler(session, envelope)
        return envelope

    return run
