"""Nothing lost, nothing stranded: SIGKILL in the middle of 60 checkouts, then a restart.

A platform of its own (not the session's shared one), in a temp dir, on free ports, every process real behind
the router. 60 customers place orders at once; while the saga is in flight every platform process is killed
with SIGKILL: the subgraphs, the outbox relay, the saga workers, the router AND the embedded broker, which
keeps its topics in memory, so every event it held is gone. Then everything is started again (the broker
empty, on the same address). Within 60 s every order must be PAID or CANCELLED, the variant's available stock
must be the initial stock minus the units paid for, and nothing may stay reserved.

Postgres and Redis are kept running: the kill covers the processes that hold work in flight (Postgres is
durable by itself; its restart path is the launcher's to test).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient
from tests.e2e.test_commerce import (
    ADD_TO_CART,
    ADDRESS,
    ADJUST_STOCK,
    CREATE_CATEGORY,
    CREATE_PRODUCT,
    CREATE_WAREHOUSE,
)

ORDERS = 60
INITIAL_STOCK = 45  # fewer units than orders: some orders are refused for stock, and that path crashes too
RECOVERY_SECONDS = 60
STOCK = "query($id: ID!) { variant(id: $id) { stock { available reserved onHand } } }"
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }"""
ORDER = "query($id: ID!) { order(id: $id) { id status items { quantity } } }"
# Short saga clocks, so the watchdog and the relay's broker check act within the test's window; the payment
# timeout stays long, so no order reaches a final state by timing out (that would hide a stranded one).
CRASH_ENV = {"ROUTER_RATE_LIMIT_PER_MINUTE": "0", "SAGA_SWEEP_INTERVAL_SECONDS": "1",
             "SAGA_STEP_TIMEOUT_SECONDS": "10", "ORDER_PAYMENT_TIMEOUT_SECONDS": "600",
             "OUTBOX_BROKER_CHECK_SECONDS": "2"}


@pytest.fixture
def crash_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from nexuscart.launcher import Platform, PlatformConfig

    # Its own embedded Postgres, Redis, broker and keys, not the session's (whose addresses are in os.environ).
    for variable in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "JWT_PRIVATE_KEY_FILE",
                     "JWT_PUBLIC_KEY_FILE"):
        monkeypatch.delenv(variable, raising=False)
    config = PlatformConfig.ephemeral(tmp_path / "platform", seed=False, quiet=True, extra_env=dict(CRASH_ENV))
    config.extra_env["INVENTORY_SERVICE_URL"] = f"http://127.0.0.1:{config.subgraph_ports['inventory']}"
    platform = Platform(config).start()
    try:
        yield platform
    finally:
        platform.stop()


def _token(platform: Any, user_id: int, role: str) -> str:
    from kernel.auth import TokenIssuer
    from kernel.settings import Settings

    keys = platform.config.data_dir / "keys"
    issuer = TokenIssuer.from_settings(Settings(jwt_private_key_file=keys / "jwt-private.pem",
                                                access_token_ttl_seconds=3600))
    return issuer.issue(user_id, [role])


def _kill_everything(platform: Any) -> None:
    """SIGKILL every platform process at once (the children first, in no order, then the broker)."""
    for proc in platform.children.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    broker = next(e for e in platform.infra.embedded if e.name == "broker")
    assert broker.proc is not None
    broker.proc.kill()
    for proc in [*platform.children.values(), broker.proc]:
        proc.wait(timeout=10)


def _restart_everything(platform: Any) -> None:
    broker = next(e for e in platform.infra.embedded if e.name == "broker")
    broker.start()  # the same address, and nothing in it
    for name in list(platform.children):
        platform.restart(name)
    platform._wait_ready()  # the launcher's own readiness wait (consumer groups included)


async def _prepare(router: GraphQLClient, admin: str, customers: list[str]) -> str:
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": f"Crash {uuid.uuid4().hex[:6]}"}},
                                admin))["createCategory"]["id"]
    warehouse = (await router.ok(CREATE_WAREHOUSE, {"code": f"WH-{uuid.uuid4().hex[:6]}", "name": "Crash"},
                                 admin))["createWarehouse"]["id"]
    product = (await router.ok(CREATE_PRODUCT, {"input": {
        "name": "Crash Kettle", "categoryId": category,
        "variants": [{"sku": f"CRASH-{uuid.uuid4().hex[:10]}", "price": "20.00", "currency": "USD"}]}},
        admin))["createProduct"]
    variant_id = product["variants"][0]["id"]
    deadline = time.monotonic() + 60
    while (body := await router.raw(ADJUST_STOCK, {"v": variant_id, "w": warehouse, "d": INITIAL_STOCK}, admin)
           ).get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body  # inventory has not heard of it yet
        assert time.monotonic() < deadline, "inventory never learned the new variant"
        await asyncio.sleep(0.2)  # polling interval of the condition above
    for customer in customers:  # the cart asks catalog and inventory about a variant it has not heard of
        await router.ok(ADD_TO_CART, {"v": variant_id, "q": 1}, customer)
    return str(variant_id)


async def _orders_final(router: GraphQLClient, orders: list[tuple[str, str]]) -> dict[str, str]:
    statuses = {}
    for order_id, customer in orders:
        statuses[order_id] = (await router.ok(ORDER, {"id": order_id}, customer))["order"]["status"]
    return statuses


def test_sigkill_of_every_process_mid_checkout_strands_no_order_and_no_stock(crash_platform: Any) -> None:
    platform = crash_platform
    admin = _token(platform, 1, "ADMIN")
    customers = [_token(platform, 1000 + n, "CUSTOMER") for n in range(ORDERS)]

    async def checkouts() -> tuple[str, list[tuple[str, str]]]:
        async with httpx.AsyncClient(timeout=60) as http:
            router = GraphQLClient(http, platform.router_url)
            variant_id = await _prepare(router, admin, customers)

            async def place(customer: str) -> tuple[str, str]:
                order = (await router.ok(PLACE, {"input": {
                    "shippingAddress": ADDRESS, "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
                    "idempotencyKey": uuid.uuid4().hex}}, customer))["placeOrder"]
                return order["id"], customer

            return variant_id, list(await asyncio.gather(*(place(c) for c in customers)))

    variant_id, orders = asyncio.run(checkouts())
    _kill_everything(platform)  # the saga of most of these orders is still in flight
    killed_at = time.monotonic()
    _restart_everything(platform)
    restarted_at = time.monotonic()

    async def recovered() -> tuple[dict[str, str], dict[str, int]]:
        async with httpx.AsyncClient(timeout=30) as http:
            router = GraphQLClient(http, platform.router_url)
            deadline = time.monotonic() + RECOVERY_SECONDS
            while True:
                statuses = await _orders_final(router, orders)
                stock = (await router.ok(STOCK, {"id": variant_id}, admin))["variant"]["stock"]
                if all(s in ("PAID", "CANCELLED") for s in statuses.values()) and stock["reserved"] == 0:
                    return statuses, stock
                if time.monotonic() > deadline:
                    return statuses, stock
                await asyncio.sleep(0.5)  # polling interval of the condition above

    statuses, stock = asyncio.run(recovered())
    print(f"\n{len(orders)} orders settled {time.monotonic() - restarted_at:.1f} s after the restart was ready "
          f"({restarted_at - killed_at:.1f} s to restart): {sum(s == 'PAID' for s in statuses.values())} PAID, "
          f"{stock}")
    assert {s for s in statuses.values()} <= {"PAID", "CANCELLED"}, statuses
    paid = sum(s == "PAID" for s in statuses.values())
    assert stock == {"available": INITIAL_STOCK - paid, "reserved": 0, "onHand": INITIAL_STOCK - paid}
