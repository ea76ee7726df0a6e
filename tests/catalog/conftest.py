"""Catalog-only fixtures on top of the shared stack in tests/conftest.py."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kernel.auth import TokenIssuer
from kernel.db import create_engine, create_session_factory
from kernel.settings import Settings


@pytest.fixture(scope="session")
def catalog_engine(catalog_api: Any) -> AsyncEngine:
    """The engine the in-process catalog app queries through (SQL-count tests listen on it)."""
    app = catalog_api.http._transport.app  # CorrelationMiddleware -> Starlette app
    return app.app.state.resources.session_factory.kw["bind"]


@pytest.fixture(scope="session")
async def service_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(service_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for service-level tests; the test commits what it wants to keep."""
    async with create_session_factory(service_engine)() as s:
        yield s


@pytest.fixture(scope="session")
def token_for(token_issuer: TokenIssuer) -> Callable[..., str]:
    """token_for("SELLER", user_id=7) -> an access token; user ids default to a fresh number."""
    counter = iter(range(1000, 10**9))

    def issue(*roles: str, user_id: int | None = None) -> str:
        return token_issuer.issue(user_id if user_id is not None else next(counter), list(roles) or ["CUSTOMER"])

    return issue
