"""The flash-sale part of `make bench` (BENCH_ONLY=flash runs only this).

For each concurrency level (64 and 256 clients): a fresh sale of 500 units, at most 2 per buyer, opened for
real (inventory holds the stock over Kafka); one-time purchase tokens issued beforehand for 4,096 buyers through
the API (straight to the promotions subgraph, untimed); then purchaseFlashSale through the router, each
request a different buyer's token. The first 500 units succeed (each creating its order in orders), the rest
answer SOLD_OUT, as in a real flash sale. After the run, the sold units are counted in orders' own table:
oversell = units in orders beyond the sale's stock, which must be 0.
Also: the same purchase straight to the promotions subgraph (router overhead), and the bare Lua script's
operations/s from one Python process against the same Redis (the ceiling of the service).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from bench.httpload import LoadResult, graphql_body, post_graphql, run_load
from kernel.db import asyncpg_dsn

SALE_STOCK = 500
PER_USER_LIMIT = 2
BUYERS = 4_096
ADJUST = """mutation($v: ID!, $w: ID!, $d: Int!) { adjustStock(variantId: $v, warehouseId: $w, delta: $d,
  reason: "flash sale bench") { available } }"""
WAREHOUSES = "query { warehouses { id } }"
FIRST_VARIANT = "query { products(first: 1) { edges { node { variants { id } } } } }"
CREATE = "mutation($input: CreateFlashSaleInput!) { createFlashSale(input: $input) { id } }"
SALE = "query($id: ID!) { flashSale(id: $id) { status remainingStock } }"
ISSUE = "mutation($id: ID!) { issueFlashSaleToken(saleId: $id) { token } }"
PURCHASE = """mutation Buy($id: ID!, $token: String!, $key: String!) {
  purchaseFlashSale(saleId: $id, token: $token, idempotencyKey: $key) { status remainingStock orderId } }"""

# What the platform is booted with for this bench: one load generator is one client IP, and each buyer gets
# tokens for several attempts; the per-user purchase bucket keeps its default.
BENCH_ENV = {"FLASH_SALE_IP_RATE_PER_SECOND": "1000000", "FLASH_SALE_IP_BURST": "1000000",
             "FLASH_SALE_TOKEN_ISSUE_PER_MINUTE": "1000"}


async def _open_sale(http: httpx.AsyncClient, router_url: str, admin: str) -> str:
    products = (await post_graphql(http, router_url, FIRST_VARIANT))["products"]
    variant_id = products["edges"][0]["node"]["variants"][0]["id"]
    warehouse = (await post_graphql(http, router_url, WAREHOUSES, token=admin))["warehouses"][0]["id"]
    await post_graphql(http, router_url, ADJUST, {"v": variant_id, "w": warehouse, "d": SALE_STOCK}, token=admin)
    now = datetime.now(UTC)
    sale_id = (await post_graphql(http, router_url, CREATE, {"input": {
        "variantId": variant_id, "salePrice": "1.00", "stock": SALE_STOCK, "perUserLimit": PER_USER_LIMIT,
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=30)).isoformat()}},
        token=admin))["createFlashSale"]["id"]
    deadline = time.monotonic() + 60
    while (await post_graphql(http, router_url, SALE, {"id": sale_id}))["flashSale"]["status"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError("the bench sale never opened (inventory hold over Kafka)")
        await asyncio.sleep(0.2)  # poll the sale's status
    return sale_id


async def _issue_tokens(promotions_url: str, sale_id: str, buyers: list[str], count: int,
                        concurrency: int = 32) -> collections.deque[tuple[str, str]]:
    """`count` (access token, purchase token) pairs, buyers in round robin; untimed setup."""
    import aiohttp
    import orjson
    pairs: collections.deque[tuple[str, str]] = collections.deque()
    body = graphql_body(ISSUE, {"id": sale_id})
    next_index = iter(range(count))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in next_index:
            access = buyers[n % len(buyers)]
            async with session.post(promotions_url, data=body, headers={
                    "content-type": "application/json", "authorization": f"Bearer {access}"}) as response:
                answer = orjson.loads(await response.read())
            if answer.get("errors"):
                raise RuntimeError(f"token issue failed: {answer['errors'][0]}")
            pairs.append((access, answer["data"]["issueFlashSaleToken"]["token"]))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return pairs


async def _sold_units(database_url: str, sale_id: str) -> tuple[int, int]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await conn.fetchrow("SELECT count(DISTINCT o.id) AS orders, coalesce(sum(i.quantity), 0) AS units "
                                  "FROM orders.orders o JOIN orders.order_items i ON i.order_id = o.id "
                                  "WHERE o.flash_sale_id = $1", int(sale_id))
        return int(row["orders"]), int(row["units"])
    finally:
        await conn.close()


async def _purchase_run(name: str, url: str, sale_id: str, pairs: collections.deque[tuple[str, str]], buyers: list[str],
                        *, concurrency: int, duration: float) -> tuple[LoadResult, collections.Counter[str]]:
    statuses: collections.Counter[str] = collections.Counter()

    spent = itertools.cycle(buyers)

    def request(_: int) -> tuple[bytes, dict[str, str]]:
        # Once the issued tokens run out, buyers retry with a spent one (INVALID_TOKEN, still the whole path).
        access, token = pairs.popleft() if pairs else (next(spent), "spent.1.x")
        return (graphql_body(PURCHASE, {"id": sale_id, "token": token, "key": uuid.uuid4().hex}),
                {"authorization": f"Bearer {access}"} if access else {})

    def check(body: dict) -> str | None:
        if body.get("errors"):
            return str(body["errors"][0])[:200]
        statuses[body["data"]["purchaseFlashSale"]["status"]] += 1
        return None

    result = await run_load(name, url, request, concurrency=concurrency, duration=duration, check=check, warmup=0)
    return result, statuses


async def _bare_script_ops(redis_url: str, duration: float, concurrency: int = 64) -> tuple[LoadResult, float]:
    """The purchase script alone: a loaded sale, one-time tokens issued beforehand (untimed, pipelined), then
    `concurrency` asyncio tasks calling it back to back from this process (redis-py included; no HTTP, no
    GraphQL). Also Redis's own time per call (INFO commandstats), the script's cost without any client."""
    from redis.asyncio import Redis

    from subgraphs.promotions import flash_sale_store as store
    redis = Redis.from_url(redis_url)
    sale_id = 9_000_000_000 + int(time.time())
    now_ms = int(time.time() * 1000)
    await store.load_sale(redis, sale_id, starts_ms=now_ms - 1000, ends_ms=now_ms + 3_600_000,
                          per_user_limit=PER_USER_LIMIT, total_stock=SALE_STOCK)
    limits = store.BucketLimits(1e9, 10**9, 1e9, 10**9)
    planned = int(duration * 12_000)
    for start in range(0, planned, 2_000):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(start + 2_000, planned)):
                pipe.set(store.sale_key(sale_id, f"tok:n{n}"), 1 + n % BUYERS, ex=300)
            await pipe.execute()
    latencies: list[float] = []
    counter = iter(range(planned))
    await redis.config_resetstat()
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        for n in counter:
            if time.perf_counter() >= stop_at:
                return
            sent = time.perf_counter()
            await store.purchase(redis, sale_id, user_id=1 + n % BUYERS, quantity=1, nonce=f"n{n}",
                                 idempotency_key=f"k{n}", reservation_id=10**15 + n, client_ip="bench", limits=limits)
            latencies.append((time.perf_counter() - sent) * 1000)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    evalsha = stats.get("cmdstat_evalsha") or {}
    server_us = float(evalsha.get("usec_per_call", 0.0))
    return (LoadResult("bare Lua purchase script (redis-py, 1 process)", concurrency, elapsed, latencies, 0),
            server_us)


async def flash_sale_scenarios(router_url: str, promotions_url: str, redis_url: str, database_url: str,
                               admin: str, make_token: Callable[[int], str], duration: float) -> list[LoadResult]:
    buyers = [make_token(100_000 + n) for n in range(BUYERS)]
    results: list[LoadResult] = []
    notes: list[str] = []
    async with httpx.AsyncClient(timeout=60) as http:
        for concurrency, url, label in ((64, router_url, "via router"), (256, router_url, "via router"),
                                        (64, promotions_url, "straight to promotions")):
            sale_id = await _open_sale(http, router_url, admin)
            pairs = await _issue_tokens(promotions_url, sale_id, buyers, int(duration * 1_500))
            result, statuses = await _purchase_run(f"flash sale: purchaseFlashSale {label}", url, sale_id, pairs,
                                                   buyers, concurrency=concurrency, duration=duration)
            results.append(result)
            remaining = (await post_graphql(http, router_url, SALE, {"id": sale_id}))["flashSale"]["remainingStock"]
            orders, units = await _sold_units(database_url, sale_id)
            oversell = max(0, units - SALE_STOCK)
            notes.append(f"    c={concurrency} {label}: {dict(statuses)}; sold {SALE_STOCK - remaining} of "
                         f"{SALE_STOCK}, orders hold {units} units in {orders} orders, oversell {oversell}")
    bare, server_us = await _bare_script_ops(redis_url, min(duration, 10.0))
    results.append(bare)
    notes.append(f"    bare script: Redis spends {server_us:.1f} us per call (~{1e6 / server_us:,.0f} calls/s on one "
                 f"core, no client)" if server_us else "    bare script: no commandstats")
    for note in notes:
        print(note)
    return results
