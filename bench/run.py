"""`make bench` (`python -m bench`): boots the platform with demo data on free ports and measures the hot paths.

Prints requests/s, p50 and p99 per scenario, the CPU each process spent per request (bench/cpu.py), and writes
them to bench-results.json. Timings are
reported, never asserted. Options (`python -m bench --help`; `make bench BENCH_ARGS='--only browse --duration 2'`)
or env: BENCH_DURATION (seconds per scenario, default 15), BENCH_CONCURRENCY (default 16), BENCH_ONLY;
BENCH_ROUTER_URL / BENCH_CATALOG_URL (+ BENCH_TOKEN) to measure a running platform instead.

Before the first scenario, a booted platform is left to go idle (the seed's events consumed: bench/cpu.py).
Scenarios: browse through the router anonymous and signed in (its short-TTL response cache answers both: catalog
and users mark the page shared), signed in with the router cache skipped (`Cache-Control: no-cache`: planning,
both subgraphs, their Redis-backed response caches), the same without `seller` (one subgraph), straight to
catalog, and a cache-busting filter (real execution everywhere); the inventory check (`variant(id) { stock {
available inStock } }` over ~170 demo variants) anonymous, signed in, and signed in with the router cache skipped;
checkout (placeOrder through the router, on carts prepared beforehand) and, from the orders' own
history, placeOrder -> PAID through the whole Kafka saga under that load; the flash sale
(bench/flash_sale_bench.py: purchaseFlashSale at 64 and 256 clients, oversell count, the bare Lua script).
search (bench/search_bench.py: search with facets via the router signed in and direct, index freshness, and
the embedded backend at 100,000 products). fanout (bench/fanout_bench.py: 1,000 flashSaleStock subscribers via
the router, fan-out latency p50/p99); relay (bench/relay_bench.py: outbox relay events/s draining a 100,000-row
backlog, 3 runs). after-purchase (bench/after_purchase_bench.py: through the router, a product's reviews and
rating anonymous and signed in, shippingMethods(cartId, address) for guest carts and a signed-in cart, and the
notifications inbox of a shopper with orders). recommendations (bench/recommendations_bench.py:
recommendedForYou signed in via the router and straight to the subgraph, after the shopper viewed a few products).
BENCH_ONLY=browse|stock|checkout|flash|search|fanout|relay|after-purchase|recommendations runs one group.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from bench.cpu import cpu_ms_per_request
from bench.httpload import (
    LoadResult,
    RequestFactory,
    cpu_snapshot,
    graphql_body,
    graphql_ok,
    post_graphql,
    run_load,
)

if TYPE_CHECKING:

    from kernel.auth import TokenIssuer

BROWSE_WITH_SELLER = """query Browse { products(first: 20) { edges { node { name brand category { name }
  seller { email } variants { sku price { amount currency } } } } } }"""
BROWSE_UNCACHED = """query BrowseFiltered($max: String) { products(first: 20, filter: {priceMax: $max}) {
  edges { node { name brand category { name } seller { email } variants { sku price { amount currency } } } } } }"""
BROWSE_WITHOUT_SELLER = """query BrowseDirect { products(first: 20) { edges { node { name brand category { name }
  variants { sku price { amount currency } } } } } }"""


def _fixed(body: bytes, headers: dict[str, str]) -> RequestFactory:
    """The same request every time."""
    return lambda _: (body, headers)


async def browse_scenarios(router_url: str, catalog_url: str, concurrency: int, duration: float,
                           token: str | None) -> list[LoadResult]:
    with_seller, without_seller = graphql_body(BROWSE_WITH_SELLER), graphql_body(BROWSE_WITHOUT_SELLER)

    unique = itertools.count()

    def uncached(_: int) -> tuple[bytes, dict[str, str]]:
        # A distinct priceMax per request (all above every demo price, so pages stay full) misses the page
        # cache and both response caches' catalog side: this measures real execution, not Redis.
        return graphql_body(BROWSE_UNCACHED, {"max": f"{5000 + next(unique) / 100:.2f}"}), {}

    scenarios: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("browse products(first:20) via router, anonymous", router_url, with_seller, {})]
    if token:
        signed_in = {"authorization": f"Bearer {token}"}
        # Without the router's cache (Cache-Control: no-cache): planning, fan-out and both subgraphs run.
        uncached_in_router = {**signed_in, "cache-control": "no-cache"}
        scenarios += [
            # A public page is shared by the router's cache with signed-in shoppers too (catalog and users mark
            # their answers shared).
            ("browse via router, signed in", router_url, with_seller, signed_in),
            ("browse via router, signed in, router cache skipped", router_url, with_seller, uncached_in_router),
            # Router overhead = the next two: one-subgraph query through the router vs straight to catalog.
            ("browse via router, signed in, no seller, router cache skipped", router_url, without_seller,
             uncached_in_router),
            ("browse direct to catalog, signed in, no seller", catalog_url, without_seller, signed_in),
        ]
    else:
        scenarios.append(("browse direct to catalog, no seller", catalog_url, without_seller, {}))
    results = [await run_load(name, url, _fixed(body, headers), concurrency=concurrency, duration=duration)
               for name, url, body, headers in scenarios]
    results.append(await run_load("browse, cache-busting filter, via router", router_url, uncached,
                                  concurrency=concurrency, duration=duration))
    return results


STOCK_CHECK = "query Stock($id: ID!) { variant(id: $id) { id stock { available inStock } } }"
PRODUCT_IDS = "query Ids { products(first: 100) { edges { node { id variants { id } } } } }"
WAREHOUSES = "query { warehouses { id } }"
ADJUST = """mutation($v: ID!, $w: ID!, $d: Int!) { adjustStock(variantId: $v, warehouseId: $w, delta: $d,
  reason: "benchmark stock") { available } }"""
GUEST_ADD = "mutation Add($v: ID!) { addToCart(variantId: $v, quantity: 1) { id } }"
PLACE_ORDER = """mutation Place($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }"""
ADDRESS = {"line1": "1 Bench Road", "city": "Porto", "postalCode": "4000-001", "country": "PT"}


async def stock_scenarios(router_url: str, concurrency: int, duration: float, token: str | None) -> list[LoadResult]:
    import httpx
    async with httpx.AsyncClient(timeout=30) as http:
        edges = (await post_graphql(http, router_url, PRODUCT_IDS))["products"]["edges"]
    variant_ids = [v["id"] for e in edges for v in e["node"]["variants"]]
    rng = random.Random(3)

    def request(_: int, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return graphql_body(STOCK_CHECK, {"id": rng.choice(variant_ids)}), headers

    results = [await run_load("inventory check via router, anonymous", router_url,
                              lambda i: request(i, {}), concurrency=concurrency, duration=duration)]
    if token:
        signed_in = {"authorization": f"Bearer {token}"}
        results.append(await run_load("inventory check via router, signed in", router_url,
                                      lambda i: request(i, signed_in), concurrency=concurrency, duration=duration))
        uncached_in_router = {**signed_in, "cache-control": "no-cache"}
        results.append(await run_load("inventory check via router, signed in, router cache skipped", router_url,
                                      lambda i: request(i, uncached_in_router), concurrency=concurrency,
                                      duration=duration))
    return results


class StatementCount:
    """Postgres statements over a window, from pg_stat_statements (`--statements`: the embedded Postgres loads
    it). Postgres 18 counts same-named tables of different schemas as one statement (`orders.outbox` in the
    output stands for every domain's outbox)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.sessions_at_start = 0

    async def _query(self, sql: str) -> list:
        import asyncpg

        from kernel.db import asyncpg_dsn
        conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    async def _sessions(self) -> int:
        """Postgres sessions opened so far in this database (each a forked backend: a pool that opens and closes
        connections under load shows here)."""
        rows = await self._query("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(rows[0]["sessions"])

    async def start(self) -> None:
        await self._query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await self._query("SELECT pg_stat_statements_reset()")
        self.sessions_at_start = await self._sessions()

    async def per(self, count: int, unit: str, top: int = 12) -> list[str]:
        """Statements and transactions per `unit` since start(), and the most frequent statements."""
        rows = await self._query("SELECT calls, total_exec_time, query FROM pg_stat_statements "
                                 "WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC")
        calls = sum(r["calls"] for r in rows)
        commits = sum(r["calls"] for r in rows if r["query"].strip().upper() == "COMMIT")
        opened = await self._sessions() - self.sessions_at_start - 2  # less the two this report opened
        executing = sum(r["total_exec_time"] for r in rows)
        lines = [f"Postgres sessions opened meanwhile: {opened} ({opened / count:.2f} per {unit})",
                 f"Postgres statements per {unit}: {calls / count:.1f} ({commits / count:.1f} transactions), "
                 f"{executing / count:.2f} ms executing them (lock waits included); "
                 f"the most frequent (calls per {unit}, execution ms per {unit}):"]
        for r in rows[:top]:
            lines.append(f"  {r['calls'] / count:6.2f} {r['total_exec_time'] / count:7.2f}  "
                         f"{' '.join(r['query'].split())[:110]}")
        return lines


async def checkout_scenarios(router_url: str, concurrency: int, duration: float, customer: str, admin: str,
                             database_url: str | None, count_statements: bool = False) -> list[LoadResult]:
    """Guest carts are prepared by a load run of addToCart (one unit of one of 20 demo variants, each
    restocked with a million units, so orders do not all queue on one stock row); placeOrder then checks
    each one out once, signed in (placeOrder reserves the stock itself). The orders' own history gives
    placeOrder -> PAID through the saga (relay, Kafka, payments, orders) under that load."""
    import httpx
    async with httpx.AsyncClient(timeout=30) as http:
        edges = (await post_graphql(http, router_url, PRODUCT_IDS))["products"]["edges"]
        variant_ids = [e["node"]["variants"][0]["id"] for e in edges[:20]]
        warehouse = (await post_graphql(http, router_url, WAREHOUSES, token=admin))["warehouses"][0]["id"]
        for variant_id in variant_ids:
            await post_graphql(http, router_url, ADJUST, {"v": variant_id, "w": warehouse, "d": 1_000_000}, token=admin)
        deadline = time.monotonic() + 60
        for variant_id in variant_ids:
            while True:  # the cart learns availability from inventory.stock_changed
                body = (await http.post(router_url, json={
                    "query": "mutation($v: ID!) { addToCart(variantId: $v, quantity: 100) { id } }",
                    "variables": {"v": variant_id}})).json()
                if not body.get("errors"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cart never saw the restock: {body['errors'][0]}")
                await asyncio.sleep(0.2)  # poll the projection

    carts: collections.deque[str] = collections.deque()

    def remember_cart(body: dict) -> str | None:
        if body.get("errors"):
            return graphql_ok(body)
        carts.append(body["data"]["addToCart"]["id"])
        return None

    adds = [graphql_body(GUEST_ADD, {"v": v}) for v in variant_ids]
    prep = await run_load("prepare carts: addToCart (guest) via router", router_url,
                          lambda i: (adds[i % len(adds)], {}), concurrency=concurrency, duration=duration,
                          check=remember_cart)
    signed_in = {"authorization": f"Bearer {customer}"}
    placed_ids: list[int] = []

    def place(_: int) -> tuple[bytes, dict[str, str]]:
        cart_id = carts.popleft() if carts else "exhausted"
        return graphql_body(PLACE_ORDER, {"input": {
            "cartId": cart_id, "shippingAddress": ADDRESS, "idempotencyKey": uuid.uuid4().hex,
            "paymentMethod": {"provider": "simulated", "token": "tok_visa"}}}), signed_in

    def remember_order(body: dict) -> str | None:
        if body.get("errors"):
            return graphql_ok(body)
        placed_ids.append(int(body["data"]["placeOrder"]["id"]))
        return None

    statements = StatementCount(database_url) if database_url and count_statements else None
    if statements:
        await statements.start()
    started = time.time()
    cpu_before = cpu_snapshot()
    checkout = await run_load("checkout: placeOrder via router", router_url, place, concurrency=concurrency,
                              duration=duration, check=remember_order)
    results = [prep, checkout]
    if database_url and placed_ids:
        saga = await saga_latency(database_url, placed_ids, started, duration)
        cpu_after = cpu_snapshot()
        if cpu_before is not None and cpu_after is not None:
            # The whole cost of an order: its request and every saga step, most of which run after the load
            # window (the checkout row divides only what was spent inside it).
            saga.cpu_ms = cpu_ms_per_request(cpu_before, cpu_after, len(placed_ids))
        if statements:
            saga.details += await statements.per(len(placed_ids), "order")
        results.append(saga)
        results.append(await notification_lag(database_url, placed_ids))
        results.append(await paid_latency_one_at_a_time(router_url, database_url, place, carts))
    return results


async def paid_latency_one_at_a_time(router_url: str, database_url: str, place: RequestFactory,
                                     carts: collections.deque[str], orders: int = 40) -> LoadResult:
    """placeOrder -> PAID for single orders on an otherwise idle platform: the saga's own latency (two Kafka
    hops after placeOrder reserved the stock: order.confirmed to payments, payment.successful to orders), as
    opposed to the backlog of the loaded run."""
    import asyncpg
    import httpx

    from kernel.db import asyncpg_dsn
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    latencies: list[float] = []
    errors = 0
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for n in range(min(orders, len(carts))):
                body, headers = place(n)
                started = time.perf_counter()
                answer = (await http.post(router_url, content=body,
                                          headers={**headers, "content-type": "application/json"})).json()
                if answer.get("errors"):
                    errors += 1
                    continue
                order_id = int(answer["data"]["placeOrder"]["id"])
                while time.perf_counter() - started < 30:
                    if await conn.fetchval("SELECT status FROM orders.orders WHERE id = $1", order_id) == "PAID":
                        latencies.append((time.perf_counter() - started) * 1000)
                        break
                    await asyncio.sleep(0.005)  # poll the order's status
                else:
                    errors += 1
    finally:
        await conn.close()
    return LoadResult("placeOrder -> PAID, one order at a time", 1, 0.0, latencies, errors)


async def saga_latency(database_url: str, order_ids: list[int], started: float, duration: float) -> LoadResult:
    """placeOrder -> PAID per order, from the orders' status history, once the saga has drained."""
    import asyncpg

    from kernel.db import asyncpg_dsn
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deadline = time.monotonic() + 300
        while True:
            settled = await conn.fetchval("SELECT count(*) FROM orders.orders WHERE id = ANY($1::bigint[]) "
                                          "AND status <> ALL(ARRAY['PENDING', 'AWAITING_PAYMENT'])", order_ids)
            if settled == len(order_ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)  # poll until the saga has drained
        drained_after = time.time() - started
        rows = await conn.fetch(
            "SELECT extract(epoch FROM (h.at - o.created_at)) * 1000 AS ms FROM orders.orders o "
            "JOIN orders.order_status_history h ON h.order_id = o.id AND h.to_status = 'PAID' "
            "WHERE o.id = ANY($1::bigint[])", order_ids)
    finally:
        await conn.close()
    result = LoadResult("placeOrder -> PAID through the saga (same run)", 0, drained_after,
                        [float(r["ms"]) for r in rows], errors=len(order_ids) - len(rows))
    if result.errors:
        result.sample_error = f"{result.errors} of {len(order_ids)} orders not PAID"
    return result


async def notification_lag(database_url: str, order_ids: list[int]) -> LoadResult:
    """A background projection's lag under the same load: from an order's PAID to its ORDER_PAID notification
    (the notifications group applies its batches after the saga's, WORKER_BACKGROUND_MAX_DEFER_SECONDS)."""
    import asyncpg

    from kernel.db import asyncpg_dsn
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    query = ("SELECT extract(epoch FROM (n.created_at - h.at)) * 1000 AS ms FROM orders.order_status_history h "
             "JOIN notifications.notifications n ON n.order_id = h.order_id AND n.kind = 'ORDER_PAID' "
             "WHERE h.order_id = ANY($1::bigint[]) AND h.to_status = 'PAID'")
    try:
        deadline = time.monotonic() + 120
        while True:
            rows = await conn.fetch(query, order_ids)
            if len(rows) == len(order_ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)  # poll until the projection has caught up
    finally:
        await conn.close()
    result = LoadResult("order PAID -> its ORDER_PAID notification (same run)", 0, 0.0,
                        [float(r["ms"]) for r in rows], errors=len(order_ids) - len(rows))
    if result.errors:
        result.sample_error = f"{result.errors} of {len(order_ids)} orders without an ORDER_PAID notification"
    return result


def _token(data_dir: Path, user_id: int, role: str) -> str:
    """An access token signed with the booted platform's key."""
    return _issuer(data_dir).issue(user_id, [role])


@functools.lru_cache(maxsize=4)
def _issuer(data_dir: Path) -> TokenIssuer:
    from kernel.auth import TokenIssuer
    from kernel.settings import Settings
    keys = data_dir / "keys"
    return TokenIssuer.from_settings(Settings(jwt_private_key_file=keys / "jwt-private.pem",
                                              access_token_ttl_seconds=3600))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 15)),
                        help="seconds per scenario (env BENCH_DURATION; default 15)")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", 16)),
                        help="connections of the closed-loop client (env BENCH_CONCURRENCY; default 16)")
    parser.add_argument("--only", choices=("browse", "stock", "checkout", "flash", "search", "fanout", "relay",
                                           "after-purchase", "recommendations"),
                        default=os.environ.get("BENCH_ONLY") or None,
                        help="run one group of scenarios (env BENCH_ONLY; default: all)")
    parser.add_argument("--statements", action="store_true",
                        help="checkout: count Postgres statements per order (loads pg_stat_statements into the "
                             "embedded Postgres, or needs it in the one at DATABASE_URL)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    duration, concurrency = args.duration, args.concurrency
    router_url, catalog_url = os.environ.get("BENCH_ROUTER_URL"), os.environ.get("BENCH_CATALOG_URL")
    platform = None
    token = os.environ.get("BENCH_TOKEN")
    if not (router_url and catalog_url):
        from nexuscart.launcher import Platform, PlatformConfig
        data_dir = Path(tempfile.mkdtemp(prefix="nexuscart-bench-"))
        print(f"booting the platform with demo data in {data_dir} ...", flush=True)
        # One load generator is one client IP: the per-IP router limit would measure itself, not the platform.
        from bench.flash_sale_bench import BENCH_ENV
        if args.statements:
            os.environ["EMBEDDED_POSTGRES_STATEMENT_STATS"] = "1"
        platform = Platform(PlatformConfig.ephemeral(data_dir, seed=True, quiet=True,
                                                     extra_env={"ROUTER_RATE_LIMIT_PER_MINUTE": "0",
                                                                **BENCH_ENV})).start()
        router_url, catalog_url = platform.router_url, platform.subgraph_url("catalog")
        token = _token(data_dir, 1, "CUSTOMER")
        from bench.cpu import CpuProbe, wait_until_idle
        from bench.httpload import probe_cpu_with
        probe = CpuProbe(platform)
        probe_cpu_with(probe)
        waited, busy = wait_until_idle(probe)
        print(f"waited {waited:.0f} s for the platform to go idle (the seed's events consumed): "
              f"{busy:.0%} of a core busy in the last 2 s", flush=True)
    only = args.only or ""
    admin = os.environ.get("BENCH_ADMIN_TOKEN")
    database_url = os.environ.get("DATABASE_URL")
    if platform is not None:
        admin = _token(platform.config.data_dir, 2, "ADMIN")
        assert platform.infra is not None  # started
        database_url = platform.infra.database_url

    async def scenarios() -> list[LoadResult]:
        results: list[LoadResult] = []
        if only in ("", "browse"):
            results += await browse_scenarios(router_url, catalog_url, concurrency, duration, token)
        if only in ("", "stock"):
            results += await stock_scenarios(router_url, concurrency, duration, token)
        if only in ("", "checkout") and token and admin:
            results += await checkout_scenarios(router_url, concurrency, duration, token, admin, database_url,
                                                count_statements=args.statements)
        if only in ("", "flash") and platform is not None and platform.infra and admin and database_url:
            from bench.flash_sale_bench import flash_sale_scenarios
            results += await flash_sale_scenarios(
                router_url, platform.subgraph_url("promotions"), platform.infra.redis_url, database_url, admin,
                lambda user_id: _token(platform.config.data_dir, user_id, "CUSTOMER"), duration)
        if only in ("", "fanout") and platform is not None and admin:
            from bench.fanout_bench import fanout_scenario
            results.append(await fanout_scenario(
                router_url, platform.subgraph_url("promotions"), admin,
                lambda user_id: _token(platform.config.data_dir, user_id, "CUSTOMER")))
        if only in ("", "after-purchase") and platform is not None and admin:
            from bench.after_purchase_bench import after_purchase_scenarios
            results += await after_purchase_scenarios(
                router_url, concurrency, duration, admin,
                lambda user_id, role: _token(platform.config.data_dir, user_id, role))
        if only in ("", "recommendations") and platform is not None and token:
            from bench.recommendations_bench import recommendations_scenarios
            results += await recommendations_scenarios(router_url, platform.subgraph_url("recommendations"), token,
                                                       concurrency, duration)
        if only in ("", "relay") and platform is not None and platform.infra:
            from bench.relay_bench import relay_scenarios
            results += await relay_scenarios(platform.infra.database_url, platform.infra.kafka_bootstrap_servers)
        if only in ("", "search") and platform is not None:
            # Last: its 100k-product scenario fills the platform's search index with generated products.
            from bench.search_bench import freshness, scale_scenario, search_scenarios
            results += await search_scenarios(router_url, platform.subgraph_url("search"), concurrency, duration,
                                              token)
            if admin:
                results.append(await freshness(router_url, admin))
            if database_url:
                results += await scale_scenario(platform.subgraph_url("search"), database_url, concurrency, duration)
        return results

    results: list[LoadResult] = []
    try:
        import uvloop
        results = uvloop.run(scenarios())
    finally:
        if platform is not None:
            platform.stop()
            # ~150 MB of embedded Postgres, Redis and logs per run: kept only when something failed, for its logs.
            if results and not any(r.errors for r in results):
                shutil.rmtree(platform.config.data_dir, ignore_errors=True)
            else:
                print(f"the platform's data and logs are kept in {platform.config.data_dir}", flush=True)
    print(f"\nNexusCart benchmark ({duration:.0f}s per scenario, {os.cpu_count()} CPUs)")
    for result in results:
        print(result.row())
        if result.sample_error:
            print(f"    first error: {result.sample_error}")
    Path("bench-results.json").write_bytes(orjson.dumps([r.as_dict() for r in results], option=orjson.OPT_INDENT_2))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
