"""Fixtures the flash-sale tests share (test_flash_sales.py, test_purchase_fast_path.py)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.db import create_engine, create_session_factory
from kernel.graphql import ServiceResources
from kernel.settings import Settings
from tests.conftest import GraphQLClient
from tests.orders.conftest import serve_locally


@pytest.fixture(scope="module")
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def apps(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Real catalog, users and orders served over HTTP, and the in-process promotions app pointing at them."""
    from subgraphs.catalog.app import build_app as catalog_app
    from subgraphs.orders.app import build_app as orders_app
    from subgraphs.promotions.app import build_app as promotions_app
    from subgraphs.users.app import build_app as users_app
    async with serve_locally(catalog_app(settings)) as catalog_url, serve_locally(users_app(settings)) as users_url:
        orders = orders_app(settings.model_copy(update={"users_service_url": users_url}))
        promotions = promotions_app(settings.model_copy(update={
            "catalog_service_url": catalog_url, "flash_sale_ip_rate_per_second": 1_000_000.0,
            "flash_sale_ip_burst": 1_000_000, "flash_sale_token_issue_per_minute": 20}))
        resources: ServiceResources = promotions.app.state.resources
        try:
            async with serve_locally(orders) as orders_url, \
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=promotions), base_url="http://promotions",
                                      timeout=60) as http, \
                    httpx.AsyncClient(base_url=catalog_url, timeout=30) as catalog_http, \
                    httpx.AsyncClient(base_url=users_url, timeout=30) as users_http, \
                    httpx.AsyncClient(base_url=orders_url, timeout=30) as orders_http:
                # orders listens only now: point promotions at it before the first request
                resources.settings = resources.settings.model_copy(update={"orders_service_url": orders_url})
                yield {"promotions": GraphQLClient(http, "/graphql"), "resources": resources,
                       "users": GraphQLClient(users_http, "/graphql"),
                       "catalog": GraphQLClient(catalog_http, "/graphql"),
                       "orders": GraphQLClient(orders_http, "/graphql")}
        finally:
            # Served without lifespans: close what the apps would close at shutdown.
            await orders.app.state.resources.aclose()
            await resources.aclose()
