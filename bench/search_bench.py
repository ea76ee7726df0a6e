"""Search scenarios (`python -m bench --only search`): search with facets through the router signed in and
straight to the search subgraph (repeated queries, mostly answered by the subgraph's response cache, and every
request a cache miss); index freshness (updateProduct -> visible in search); and, last, the
embedded backend at 100,000 generated products (index build time, then a typo query with facets straight
to the subgraph). The 100k documents go into the benchmark platform's own search index only (not the
catalog), which is why that scenario runs last and talks to the subgraph directly."""
from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.httpload import LoadResult, graphql_body, run_load

SEARCH = """query Search($q: String!) { search(query: $q, first: 20) { totalCount didYouMean
  edges { node { id name } highlights { field snippet } } facets { name values { value count selected } } } }"""
SEARCH_IDS = """query SearchIds($q: String!) { search(query: $q, first: 20) { totalCount didYouMean
  edges { node { id } highlights { field snippet } } facets { name values { value count selected } } } }"""
# What shoppers type: words, prefixes, plurals, brands, typos, several words.
QUERIES = ("headphones", "kettle", "head", "voltix", "running shoes", "ketle", "smartphnoe", "dutch oven",
           "copperleaf skillet", "yoga mat", "bookshelf walnut", "ultrabok", "power bank", "plush", "helmets")
TYPO_QUERIES = ("hedphones", "ketle voltix", "smartphnoe case", "ultrabok", "skilet 24 cm", "runing shoe",
                "bookshelv oak", "puzle")


async def wait_until_indexed(router_url: str) -> None:
    """The demo catalogue reaches search through Kafka after the seed: wait until every product is indexed."""
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=10) as http:
        async def count(query: str) -> int:
            answer = (await http.post(router_url, json={"query": query})).json()
            return int(next(iter(answer["data"].values()))["totalCount"])
        wanted = await count("{ products(first: 1) { totalCount } }")
        while await count('{ search(query: "", filter: {priceMin: "0"}) { totalCount } }') < wanted:
            if time.monotonic() > deadline:
                raise RuntimeError("the demo catalogue did not reach the search index")
            await asyncio.sleep(0.5)


async def search_scenarios(router_url: str, search_url: str, concurrency: int, duration: float,
                           token: str | None) -> list[LoadResult]:
    await wait_until_indexed(router_url)
    rotation = itertools.cycle(QUERIES)
    headers = {"authorization": f"Bearer {token}"} if token else {}

    def via_router(_: int) -> tuple[bytes, dict[str, str]]:
        return graphql_body(SEARCH, {"q": next(rotation)}), headers

    def direct(_: int) -> tuple[bytes, dict[str, str]]:
        return graphql_body(SEARCH_IDS, {"q": next(rotation)}), headers

    def direct_uncached(number: int) -> tuple[bytes, dict[str, str]]:
        return graphql_body(SEARCH_IDS, uncached({"q": next(rotation)}, number)), headers

    return [
        shown(await run_load("search + facets via router, signed in (catalog names)", router_url, via_router,
                             concurrency=concurrency, duration=duration)),
        shown(await run_load("search + facets direct to search", search_url, direct, concurrency=concurrency,
                             duration=duration)),
        shown(await run_load("search + facets direct to search, every request a cache miss", search_url,
                             direct_uncached, concurrency=concurrency, duration=duration)),
    ]


def uncached(variables: dict[str, Any], number: int) -> dict[str, Any]:
    """The variables plus one the query does not declare (GraphQL ignores it): a request the search subgraph's
    response cache has never seen, so the search itself is measured rather than a cached answer."""
    return variables | {"benchRequest": f"{time.time_ns()}-{number}"}


def shown(result: LoadResult) -> LoadResult:
    """Print a row as soon as it is measured: the 100k scenario runs long after the others."""
    print(result.row(), flush=True)
    return result


async def freshness(router_url: str, admin_token: str, rounds: int = 40) -> LoadResult:
    """updateProduct through the router, then poll search (every 10 ms) until the new name is found."""
    latencies: list[float] = []
    errors = 0
    sample: str | None = None
    auth = {"authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        async def post(query: str, variables: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
            answer = (await http.post(router_url, json={"query": query, "variables": variables},
                                      headers=headers or {})).json()
            if answer.get("errors"):
                raise RuntimeError(str(answer["errors"])[:200])
            return answer["data"]

        product = (await post("{ products(first: 1) { edges { node { id } } } }", {}))["products"]["edges"][0]
        product_id = product["node"]["id"]
        for i in range(rounds):
            word = f"freshq{i}z{random.randrange(10**6)}"
            started = time.perf_counter()
            try:
                await post("mutation($id: ID!, $name: String!) { updateProduct(id: $id, input: {name: $name}) { id } }",
                           {"id": product_id, "name": f"Bench {word} Item"}, auth)
                deadline = started + 10
                while time.perf_counter() < deadline:
                    found = await post("query($q: String!) { search(query: $q, first: 1) { totalCount } }",
                                       {"q": word}, auth)
                    if found["search"]["totalCount"]:
                        latencies.append((time.perf_counter() - started) * 1000)
                        break
                    await asyncio.sleep(0.01)
                else:
                    errors += 1
            except Exception as exc:  # noqa: BLE001 - a failed round is counted and reported, not fatal
                errors += 1
                sample = sample or repr(exc)
    return shown(LoadResult("freshness: updateProduct -> found by search", 1, 0.0, latencies, errors, sample))


def generated_products(count: int, seed: int = 7) -> list[Any]:
    """`count` catalog snapshots shaped like the demo catalogue (names, brands, categories, attributes)."""
    from nexuscart.demo_data import CATEGORY_PLAN, demo_products
    from subgraphs.catalog.events import ProductCreated, VariantSnapshot
    from subgraphs.catalog.service import slugify

    parents = {name: parent for name, parent, *_ in CATEGORY_PLAN}
    started = datetime(2026, 1, 1, tzinfo=UTC)
    snapshots = []
    for i, product in enumerate(demo_products(count=count, seed=seed)):
        chain = [product.category]
        while parents[chain[-1]]:
            chain.append(parents[chain[-1]] or "")
        product_id = 5 * 10**15 + i
        snapshots.append(ProductCreated(
            product_id=product_id, slug=slugify(product.name), name=product.name, brand=product.brand,
            description=product.description, tags=product.tags, category_id=len(chain), seller_id=1,
            min_price=min(v.price for v in product.variants), currency="USD",
            created_at=started + timedelta(seconds=i), updated_at=started + timedelta(seconds=i),
            variants=[VariantSnapshot(variant_id=product_id * 4 + j, sku=f"GEN-{v.sku}", price=v.price,
                                      currency="USD", attributes=dict(v.attributes))
                      for j, v in enumerate(product.variants)],
            category_slugs=[slugify(c) for c in chain], category_names=chain))
    return snapshots


async def scale_scenario(search_url: str, database_url: str, concurrency: int, duration: float,
                         count: int = 100_000) -> list[LoadResult]:
    from sqlalchemy import text

    from kernel.db import create_engine, create_session_factory
    from kernel.settings import Settings
    from kernel.uow import unit_of_work
    from subgraphs.search import service

    snapshots = generated_products(count)
    engine = create_engine(Settings(database_url=database_url, redis_url="unused"))
    try:
        started = time.perf_counter()
        async with unit_of_work(create_session_factory(engine)) as session:
            await service.rebuild(session, snapshots)
            # Stock as inventory would report it: nine variants in ten in stock (bench only: straight SQL).
            await session.execute(text("UPDATE search.variants SET in_stock = (variant_id % 10 <> 0)"))
            await session.execute(text("UPDATE search.documents d SET in_stock = EXISTS (SELECT 1 FROM "
                                       "search.variants v WHERE v.product_id = d.product_id AND v.in_stock)"))
        build = time.perf_counter() - started
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE search.documents"))
            await connection.execute(text("ANALYZE search.vocabulary"))
    finally:
        await engine.dispose()
    build_result = shown(LoadResult(f"index build, {count:,} products (one transaction)", 1, 0.0, [build * 1000], 0))
    rotation = itertools.cycle(TYPO_QUERIES)

    # Every request uncached: this measures the backend at scale (and the demo catalogue's answers cached
    # earlier under the same query texts are not what this index holds).
    def typo(number: int) -> tuple[bytes, dict[str, str]]:
        return graphql_body(SEARCH_IDS, uncached({"q": next(rotation)}, number)), {}

    exact = itertools.cycle(("headphones", "kettle", "voltix charger", "walnut bookshelf"))

    def plain(number: int) -> tuple[bytes, dict[str, str]]:
        return graphql_body(SEARCH_IDS, uncached({"q": next(exact)}, number)), {}

    return [build_result,
            shown(await run_load(f"typo query + facets direct to search, {count // 1000}k products", search_url,
                                 typo, concurrency=concurrency, duration=duration)),
            shown(await run_load(f"word query + facets direct to search, {count // 1000}k products", search_url,
                                 plain, concurrency=concurrency, duration=duration))]


__all__ = ["freshness", "scale_scenario", "search_scenarios"]
