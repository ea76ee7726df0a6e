"""Catalog fixtures: a fresh, migrated database per test session on a real Postgres, real Redis (db 15 by
default), tables truncated and Redis flushed before every test, and the catalog app in process.

TEST_DATABASE_URL is the admin URL the test database is created from; TEST_REDIS_URL picks the Redis.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kernel.auth import TokenIssuer, ensure_keypair
from kernel.db import asyncpg_dsn, create_engine, create_session_factory
from kernel.graphql import ServiceResources
from kernel.migrate import migrate_all
from kernel.settings import Settings

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
async def catalog_database_url() -> AsyncIterator[str]:
    name = f"catalog_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(ADMIN_URL, name)
    await migrate_all(url, {"catalog": "subgraphs.catalog.migrations"})
    yield url
    admin = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def catalog_settings(catalog_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    private_key, public_key = ensure_keypair(Path(tmp_path_factory.mktemp("catalog-keys")))
    return Settings(database_url=catalog_database_url, redis_url=REDIS_URL, jwt_private_key_file=private_key,
                    jwt_public_key_file=public_key, catalog_cache_ttl_seconds=300, log_level="WARNING")


@pytest.fixture(scope="session")
async def catalog_db(catalog_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(catalog_database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def catalog_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def _clean_catalog(catalog_db: asyncpg.Pool, catalog_redis: Redis) -> None:
    await catalog_db.execute("TRUNCATE catalog.product_variants, catalog.products, catalog.categories, "
                             "catalog.outbox, catalog.inbox CASCADE")
    await catalog_redis.flushdb()


@pytest.fixture(scope="session")
def catalog_app(catalog_settings: Settings) -> Any:
    from subgraphs.catalog.app import build_app
    return build_app(catalog_settings)


@pytest.fixture(scope="session")
def catalog_resources(catalog_app: Any) -> ServiceResources:
    return catalog_app.app.state.resources  # CorrelationMiddleware -> Starlette app


@pytest.fixture(scope="session")
def catalog_engine(catalog_resources: ServiceResources) -> AsyncEngine:
    return catalog_resources.session_factory.kw["bind"]


@pytest.fixture(scope="session")
async def service_engine(catalog_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(catalog_settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(service_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for service-level tests; the test commits what it wants to keep."""
    async with create_session_factory(service_engine)() as s:
        yield s


class GraphQL:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=headers)
        assert response.status_code < 500, response.text
        return response.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict:
        body = await self(query, variables, token)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error_code(self, query: str, variables: dict[str, Any] | None = None,
                         token: str | None = None) -> str:
        body = await self(query, variables, token)
        assert body.get("errors"), f"expected an error, got {body}"
        return body["errors"][0]["extensions"]["code"]


@pytest.fixture(scope="session")
async def gql(catalog_app: Any) -> AsyncIterator[GraphQL]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=catalog_app), base_url="http://catalog") as http:
        yield GraphQL(http)


@pytest.fixture(scope="session")
def token_for(catalog_settings: Settings) -> Callable[..., str]:
    """token_for("SELLER", user_id=7) -> an access token; user ids default to a fresh number."""
    issuer = TokenIssuer.from_settings(catalog_settings)
    counter = iter(range(1000, 10**9))

    def issue(*roles: str, user_id: int | None = None) -> str:
        return issuer.issue(user_id if user_id is not None else next(counter), list(roles) or ["CUSTOMER"])

    return issue
