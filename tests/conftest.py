"""Shared fixtures: one real stack per test session (embedded Postgres, Redis and Tansu broker unless
DATABASE_URL / REDIS_URL / KAFKA_BOOTSTRAP_SERVERS are set), clean tables and Redis per test,
in-process subgraph clients, user/token factories, and the full platform behind the router for e2e."""
from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kernel.auth import TokenIssuer, ensure_keypair
from kernel.db import asyncpg_dsn, create_engine, create_session_factory
from kernel.migrate import migrate_all
from kernel.settings import Settings, get_settings
from nexuscart.infra import Infrastructure, run_blocking, start_infrastructure
from nexuscart.registry import SUBGRAPHS, migration_plan


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    data_dir = tmp_path_factory.mktemp("nexuscart-data")
    stack = start_infrastructure(data_dir, database_url=os.environ.get("DATABASE_URL"),
                                 redis_url=os.environ.get("REDIS_URL"),
                                 kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    private_key, public_key = ensure_keypair(data_dir / "keys")
    # Settings are read from the environment; every process the tests start inherits these.
    os.environ.update({"DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url,
                       "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
                       "JWT_PRIVATE_KEY_FILE": str(private_key), "JWT_PUBLIC_KEY_FILE": str(public_key),
                       "NEXUSCART_TEST_DATA_DIR": str(data_dir)})
    get_settings.cache_clear()
    run_blocking(migrate_all(stack.database_url, migration_plan()))
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def settings(infra: Infrastructure) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def db_admin(infra: Infrastructure) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(infra.database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(infra: Infrastructure) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def _truncate_waiting(conn: asyncpg.Connection, statement: str) -> None:
    """The fallback when the tables never were all free at once (15 s): wait for the locks."""
    await conn.execute("SET lock_timeout = '20s'")
    for attempt in range(5):
        try:
            await conn.execute(statement)
            return
        except asyncpg.DeadlockDetectedError:
            # Postgres picked this reset as the victim of a cycle with a platform transaction: again.
            if attempt == 4:
                raise
        except asyncpg.LockNotAvailableError:
            # A test that failed mid-request can leave an in-process app's transaction open (its task
            # abandoned), holding its locks for as long as the session lasts: without this every later
            # test would wait on this TRUNCATE for ever. End such transactions, then again.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction' AND now() - state_change > interval '10 seconds'")
            if attempt == 4:
                raise


async def _reset(stack: Infrastructure) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1::text[]) "
            "AND tablename <> 'schema_migrations'", [s.name for s in SUBGRAPHS])
        if tables:
            names = ", ".join(f'{t["schemaname"]}."{t["tablename"]}"' for t in tables)
            # The e2e platform keeps running between tests (workers, reconciler), and a TRUNCATE that waits for
            # one table while holding others can close a cycle with their transactions (a deadlock whose victim
            # was often this reset). So first: take every lock without waiting, all or none, and try again a
            # moment later while any table is in use; nothing is held while waiting, so no cycle can form.
            for _ in range(300):
                try:
                    async with conn.transaction():
                        await conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE NOWAIT")
                        await conn.execute(f"TRUNCATE {names} CASCADE")
                    break
                except asyncpg.LockNotAvailableError:
                    await asyncio.sleep(0.05)  # a platform transaction holds a table: it ends within moments
            else:
                await _truncate_waiting(conn, f"TRUNCATE {names} CASCADE")
    finally:
        await conn.close()
    client = Redis.from_url(stack.redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> None:
    """Every test that touches the stack starts from empty domain tables and an empty Redis."""
    if "infra" in request.fixturenames:
        run_blocking(_reset(request.getfixturevalue("infra")))


@pytest.fixture(scope="session")
def token_issuer(settings: Settings) -> TokenIssuer:
    return TokenIssuer.from_settings(settings)


@pytest.fixture(scope="session")
def token_for(token_issuer: TokenIssuer) -> Callable[..., str]:
    """token_for("SELLER", user_id=7) -> an access token; user ids default to a fresh number."""
    counter = iter(range(1000, 10**9))

    def issue(*roles: str, user_id: int | None = None) -> str:
        return token_issuer.issue(user_id if user_id is not None else next(counter), list(roles) or ["CUSTOMER"])

    return issue


@pytest.fixture(scope="session")
async def service_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine for service-level tests that call domain functions directly."""
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(service_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for service-level tests; the test commits what it wants to keep."""
    async with create_session_factory(service_engine)() as s:
        yield s


class GraphQLClient:
    """Posts GraphQL to one endpoint; `token` sends `Authorization: Bearer`."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def raw(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None, *,
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
        all_headers = {"content-type": "application/json", **(headers or {})}
        if token:
            all_headers["authorization"] = f"Bearer {token}"
        response = await self.http.post(self.url, json={"query": query, "variables": variables or {}},
                                        headers=all_headers)
        assert response.status_code < 500, response.text
        return response.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None,
                 **kwargs: Any) -> dict[str, Any]:
        body = await self.raw(query, variables, token, **kwargs)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error_code(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None,
                         **kwargs: Any) -> str:
        body = await self.raw(query, variables, token, **kwargs)
        assert body.get("errors"), f"expected an error, got {body}"
        return body["errors"][0]["extensions"]["code"]


@contextlib.asynccontextmanager
async def served_in_process(app: Any, base_url: str = "http://subgraph",
                            **client_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling a subgraph's ASGI app in process. ASGITransport runs no lifespan, so what the
    app's shutdown would close (kernel's ServiceResources.aclose: pooled peer clients, Redis, the engine) is
    closed when the block ends."""
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url,
                                     **client_options) as http:
            yield http
    finally:
        await app.app.state.resources.aclose()  # CorrelationMiddleware -> Starlette app


@pytest.fixture(scope="session")
async def users_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    from subgraphs.users.app import build_app
    async with served_in_process(build_app(settings)) as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture(scope="session")
async def catalog_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    from subgraphs.catalog.app import build_app
    async with served_in_process(build_app(settings)) as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture
def make_user(infra: Infrastructure, settings: Settings, token_issuer: TokenIssuer):
    """Create a user straight through the users service; returns (user_id, access_token)."""
    from kernel.db import create_engine, create_session_factory
    from subgraphs.users import service

    async def factory(*roles: str, email: str | None = None,
                      password: str = "correct-horse-battery") -> tuple[int, str]:
        engine = create_engine(settings)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                user = await service.register(session, email=email or f"user-{uuid.uuid4().hex[:10]}@example.com",
                                              password=password, first_name="Test", last_name="User",
                                              roles=tuple(roles) or ("CUSTOMER",))
        finally:
            await engine.dispose()
        return user.id, token_issuer.issue(user.id, user.roles)

    return factory


# The shared platform's Stripe settings (tests/e2e/test_stripe.py signs its own webhooks with the secret).
E2E_STRIPE_ENV = {
    "PAYMENT_PROVIDERS": "simulated,stripe", "STRIPE_WEBHOOK_SECRET": "whsec_e2e_stripe",
    "STRIPE_MAX_NETWORK_RETRIES": "1",
    # The reconciler runs every second and takes payments idle for 4 s: later than a webhook (about 1 s after
    # the action), so the webhook tests see the webhook's effect, not the reconciler's.
    "PAYMENT_RECONCILE_INTERVAL_SECONDS": "1", "PAYMENT_RECONCILE_AFTER_SECONDS": "4",
    # A payment that never answers is cancelled after a minute, not 15 (yet not so soon that a busy CI machine
    # times out the paying ones: a SIGKILLed worker's restart and rejoin took 15-40 s under load).
    "ORDER_PAYMENT_TIMEOUT_SECONDS": "60"}


@pytest.fixture(scope="session")
def platform(infra: Infrastructure, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Every subgraph, the outbox relay and the router as real processes, on free ports."""
    from nexuscart.launcher import Platform, PlatformConfig
    config = PlatformConfig.ephemeral(Path(os.environ["NEXUSCART_TEST_DATA_DIR"]), seed=False,
                                      quiet=not os.environ.get("NEXUSCART_TEST_VERBOSE"),
                                      # Stripe as `make run` has it: a localstripe of the platform's own, so
                                      # tests/e2e/test_stripe.py needs no restart of the services (restarting
                                      # both workers could leave a consumer group unjoined on the embedded
                                      # broker for minutes; see workers/runtime.py, JOIN_STALL_SECONDS).
                                      local_stripe=True,
                                      extra_env={**E2E_STRIPE_ENV,
                                                 "SAGA_SWEEP_INTERVAL_SECONDS": "0.5",
                                                 # Every test shares one client IP; the limit has its own
                                                 # router in test_router_limits.py.
                                                 "ROUTER_RATE_LIMIT_PER_MINUTE": "0",
                                                 "FLASH_SALE_IP_RATE_PER_SECOND": "100000",
                                                 "FLASH_SALE_IP_BURST": "100000",
                                                 "FLASH_SALE_RECONCILE_INTERVAL_SECONDS": "0.5",
                                                 "FLASH_SALE_RECONCILE_GRACE_SECONDS": "2"})
    running = Platform(config).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
async def router(platform: Any) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, platform.router_url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests run last: once the platform (and its outbox relay) is up, it drains outboxes
    that in-process tests inspect; fast tests also give feedback first."""
    items.sort(key=lambda item: "/e2e/" in str(item.path))
