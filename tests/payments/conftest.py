"""Payments fixtures on top of the shared stack in tests/conftest.py."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.consumer import ConsumerSpec, WorkerResources
from kernel.db import create_engine, create_session_factory
from kernel.events import EventEnvelope
from kernel.ids import next_id
from kernel.settings import Settings
from subgraphs.payments.consumers import consumer_specs
from subgraphs.payments.providers import SimulatedProvider
from tests.conftest import GraphQLClient, served_in_process


@pytest.fixture(scope="session")
async def payments_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    from subgraphs.payments.app import build_app
    async with served_in_process(build_app(settings)) as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture(scope="session")
def payments_engine(payments_api: GraphQLClient) -> AsyncEngine:
    """The engine the in-process payments app queries through (SQL-count tests listen on it)."""
    app = payments_api.http._transport.app  # type: ignore[attr-defined]  # CorrelationMiddleware -> Starlette
    return app.app.state.resources.session_factory.kw["bind"]


@pytest.fixture(scope="session")
async def worker_resources(settings: Settings, redis: Redis) -> AsyncIterator[WorkerResources]:
    """What the worker process hands to `consumer_specs`: settings, sessions and Redis."""
    engine = create_engine(settings)
    yield WorkerResources(settings=settings, session_factory=create_session_factory(engine), redis=redis)
    await engine.dispose()


@pytest.fixture(scope="session")
def spec(worker_resources: WorkerResources) -> ConsumerSpec:
    (only,) = consumer_specs(worker_resources)
    return only


@pytest.fixture
def provider(redis: Redis) -> SimulatedProvider:
    """A second handle on the same simulated provider state (its ledger is in Redis)."""
    return SimulatedProvider(redis)


Deliver = Callable[..., Awaitable[EventEnvelope]]


@pytest.fixture
def deliver(spec: ConsumerSpec, worker_resources: WorkerResources) -> Deliver:
    """Run the consumer's dispatching handler for one event in a transaction the test commits, the way
    the worker does (minus the inbox, which is the kernel's concern and tested there)."""

    async def run(event_type: str, payload: dict[str, Any], envelope: EventEnvelope | None = None) -> EventEnvelope:
        envelope = envelope or EventEnvelope.new(event_type, payload)
        async with worker_resources.session_factory() as session, session.begin():
            await spec.handler(session, envelope)
        return envelope

    return run


@pytest.fixture
def order_id() -> int:
    return next_id()

