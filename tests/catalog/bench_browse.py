"""Latency of the browse query through the catalog app in process (httpx ASGITransport, warm cache).

Not a test (speed is measured, never asserted). Usage, against a scratch database and Redis db 15:
  createdb -h 127.0.0.1 -U postgres catalog_bench
  .venv/bin/python -m tests.catalog.bench_browse postgresql://postgres@127.0.0.1:5432/catalog_bench
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy import text

from kernel.auth import Principal, ensure_keypair
from kernel.db import create_engine, create_session_factory
from kernel.migrate import migrate_all
from kernel.settings import Settings

BROWSE = """{ products(first: 20) { edges { node { name brand category { name }
  variants { sku price { amount currency } } } } } }"""


async def seed(settings: Settings, redis: Redis) -> None:
    from subgraphs.catalog import service
    engine = create_engine(settings)
    admin = Principal(user_id=1, roles=frozenset({"ADMIN"}))
    try:
        async with create_session_factory(engine)() as session:
            if await session.scalar(text("SELECT count(*) FROM catalog.products")):
                return
            categories = [await service.create_category(session, redis, caller=admin,
                                                        category_in=service.CategoryIn(name=f"Category {i}"))
                          for i in range(10)]
            for i in range(200):
                await service.create_product(session, redis, caller=admin, product_in=service.ProductIn(
                    name=f"Product {i}", category_id=categories[i % 10].id, brand=f"Brand {i % 7}",
                    variants=[service.VariantIn(sku=f"B-{i}-{v}", price=f"{10 + i + v}.99",
                                                attributes={"size": "SML"[v]}) for v in range(3)]))
            await session.commit()
    finally:
        await engine.dispose()


async def main(database_url: str, requests: int = 500) -> None:
    keys = Path(tempfile.gettempdir()) / "catalogkeys"
    private_key, public_key = ensure_keypair(keys)
    settings = Settings(database_url=database_url, redis_url="redis://127.0.0.1:6379/15",
                        jwt_private_key_file=private_key, jwt_public_key_file=public_key, log_level="WARNING")
    await migrate_all(database_url, {"catalog": "subgraphs.catalog.migrations"})
    redis = Redis.from_url(settings.redis_url)
    await seed(settings, redis)
    await redis.aclose()

    from subgraphs.catalog.app import build_app
    from subgraphs.catalog.response_cache import ResponseCacheExtension
    from subgraphs.catalog.schema import schema
    app = build_app(settings)
    with_response_cache = schema.extensions
    without_response_cache = tuple(e for e in schema.extensions if e is not ResponseCacheExtension)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://catalog") as http:
        for label, extensions in (("whole-response cache hit", with_response_cache),
                                  ("executed, page + documents from Redis", without_response_cache)):
            schema.extensions = extensions
            for _ in range(50):  # warm the caches, the parser/validation caches and the pools
                response = await http.post("/graphql", json={"query": BROWSE})
                assert "errors" not in response.json(), response.text
            timings = []
            for _ in range(requests):
                started = time.perf_counter()
                await http.post("/graphql", json={"query": BROWSE})
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            print(f"{requests} sequential browse requests (first: 20, 3 variants each), {label}: "
                  f"mean {statistics.mean(timings):.2f} ms, p50 {timings[len(timings) // 2]:.2f} ms, "
                  f"p99 {timings[int(len(timings) * 0.99)]:.2f} ms -> {1000 / statistics.mean(timings):.0f} req/s")
    schema.extensions = with_response_cache


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/catalog_scratch"))
