"""The commerce spine end to end, through the router and real processes: catalog -> inventory -> cart ->
placeOrder -> Kafka saga (inventory, payments, orders) -> orderStatusChanged, over WebSocket and SSE.

The platform's worker runs with ORDER_PAYMENT_TIMEOUT_SECONDS from tests/conftest.py (a minute), so
the payment-timeout path is observable. Waits poll a condition with a deadline, never a fixed sleep.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import websockets

CREATE_CATEGORY = "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id } }"
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) { id variants { id sku } } }"""
CREATE_WAREHOUSE = "mutation($code: String!, $name: String!) { createWarehouse(code: $code, name: $name) { id } }"
ADJUST_STOCK = """mutation($v: ID!, $w: ID!, $d: Int!) {
  adjustStock(variantId: $v, warehouseId: $w, delta: $d, reason: "e2e restock") { available reserved inStock } }"""
ADD_TO_CART = """mutation($cartId: ID, $v: ID!, $q: Int!) { addToCart(cartId: $cartId, variantId: $v, quantity: $q) {
  id itemCount subtotal { amount currency } items { id quantity unitPrice { amount } lineTotal { amount } } } }"""
CART = "query($cartId: ID) { cart(cartId: $cartId) { id itemCount items { id quantity } } }"
PLACE_ORDER = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  id number status cancellationReason total { amount currency } items { quantity unitPrice { amount } } } }"""
ORDER = """query($id: ID!) { order(id: $id) { id status total { amount } statusHistory { status previousStatus reason }
  payment { status amount { amount } provider failureReason } } }"""
CANCEL = "mutation($id: ID!) { cancelOrder(id: $id) { id status } }"
STOCK = "query($id: ID!) { product(id: $id) { variants { id stock { available reserved inStock } } } }"
MY_ORDERS = """query { me { orders(first: 50) { edges { node { id status } } totalCount } } }"""
ORDER_STATUS = """subscription($id: ID!) {
  orderStatusChanged(orderId: $id) { orderId status previousStatus at reason } }"""

ADDRESS = {"line1": "1 Test Street", "city": "Lisbon", "postalCode": "1000-001", "country": "PT"}
FINAL = {"PAID", "CANCELLED", "REFUNDED", "DELIVERED"}


async def eventually(probe: Callable[[], Awaitable[Any]], *, within: float = 30.0, what: str = "condition") -> Any:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)  # polling interval of the probe above, not a stand-in for a condition


async def stocked_variant(router, admin: str, units: int, price: str = "25.00") -> tuple[str, str]:
    """A new product with one variant holding `units` in a new warehouse, visible to inventory and to the
    cart's projections (both fed by events): returns (product_id, variant_id)."""
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": f"E2E {uuid.uuid4().hex[:6]}"}},
                                admin))["createCategory"]["id"]
    product = (await router.ok(CREATE_PRODUCT, {"input": {
        "name": f"Spine Widget {uuid.uuid4().hex[:6]}", "categoryId": category,
        "variants": [{"sku": f"SPINE-{uuid.uuid4().hex[:10]}", "price": price, "currency": "USD"}]}},
        admin))["createProduct"]
    variant_id = product["variants"][0]["id"]
    warehouse = (await router.ok(CREATE_WAREHOUSE, {"code": f"WH-{uuid.uuid4().hex[:6]}", "name": "E2E"},
                                 admin))["createWarehouse"]["id"]

    # At once: inventory asks the catalog about a variant whose product.created has not reached it yet.
    await router.ok(ADJUST_STOCK, {"v": variant_id, "w": warehouse, "d": units}, admin)

    async def cart_sees_stock() -> bool:
        stock = (await router.ok(STOCK, {"id": product["id"]}, admin))["product"]["variants"][0]["stock"]
        assert stock["available"] == units
        return True

    await cart_sees_stock()
    await wait_for_cart_projection(router, variant_id, units)
    return product["id"], variant_id


async def wait_for_cart_projection(router, variant_id: str, units: int) -> None:
    """The cart learns prices and availability from events: a guest cart probe for `units` units succeeds
    once both projections have arrived (a refused add creates and changes nothing)."""
    async def accepted() -> bool:
        body = await router.raw(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": min(units, 100)})
        if body.get("errors"):
            assert body["errors"][0]["extensions"]["code"] in ("NOT_FOUND", "OUT_OF_STOCK"), body
            return False
        return True

    await eventually(accepted, what="the cart's catalog and stock projections")


async def place_order(router, token: str, token_name: str = "tok_visa", key: str | None = None) -> dict:
    return (await router.ok(PLACE_ORDER, {"input": {
        "shippingAddress": ADDRESS, "paymentMethod": {"provider": "simulated", "token": token_name},
        "idempotencyKey": key or uuid.uuid4().hex}}, token))["placeOrder"]


async def wait_for_status(router, token: str, order_id: str, statuses: set[str], within: float = 30) -> dict:
    async def reached() -> dict | None:
        order = (await router.ok(ORDER, {"id": order_id}, token))["order"]
        return order if order["status"] in statuses else None

    return await eventually(reached, within=within, what=f"order {order_id} to reach {statuses}")


async def wait_all_final(db_admin: asyncpg.Pool, order_ids: list[str], within: float = 120) -> None:
    """One query for many orders (polling each through the router would be the load, not the test)."""
    ids = [int(i) for i in order_ids]

    async def all_final() -> bool:
        settled = await db_admin.fetchval(
            "SELECT count(*) FROM orders.orders WHERE id = ANY($1::bigint[]) AND status = ANY($2::text[])",
            ids, sorted(FINAL))
        return settled == len(ids)

    await eventually(all_final, within=within, what=f"{len(ids)} orders to settle")


async def stock_of(router, token: str, product_id: str) -> dict:
    return (await router.ok(STOCK, {"id": product_id}, token))["product"]["variants"][0]["stock"]


async def ws_subscribe(url: str, token: str, order_id: str):
    ws = await websockets.connect(url.replace("http://", "ws://"), subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": ORDER_STATUS, "variables": {"id": order_id}}}))
    return ws


async def ws_statuses_until(ws, final: str, within: float = 30) -> list[dict]:
    events: list[dict] = []
    deadline = time.monotonic() + within
    while not events or events[-1]["status"] != final:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        events.append(message["payload"]["data"]["orderStatusChanged"])
    return events


async def test_browse_add_to_cart_place_order_and_watch_it_get_paid(router, platform, make_user) -> None:
    # Given a product with 10 units, visible in the browse listing with its stock
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 10, price="12.50")
    assert (await stock_of(router, admin, product_id)) == {"available": 10, "reserved": 0, "inStock": True}
    _, customer = await make_user()

    # When the customer adds 2 units and places an order with a card that succeeds
    cart = (await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 2}, customer))["addToCart"]
    assert cart["subtotal"] == {"amount": "25.00", "currency": "USD"} and cart["itemCount"] == 2
    order = await place_order(router, customer)
    # Then the order comes back with its stock already reserved, waiting for the payment
    assert order["status"] == "AWAITING_PAYMENT" and order["total"]["amount"] == "25.00" and order["number"]
    assert (await stock_of(router, admin, product_id)) == {"available": 8, "reserved": 2, "inStock": True}
    # and subscribes to its status over WebSocket right away
    ws = await ws_subscribe(platform.router_url, customer, order["id"])
    try:
        events = await ws_statuses_until(ws, "PAID")
    finally:
        await ws.close()

    # Then the stream shows every transition in order, ending PAID
    statuses = [e["status"] for e in events]
    assert statuses[-2:] == ["AWAITING_PAYMENT", "PAID"] and statuses[0] in ("PENDING", "AWAITING_PAYMENT")
    assert events[-1]["previousStatus"] == "AWAITING_PAYMENT" and all(e["orderId"] == order["id"] for e in events)
    paid = (await router.ok(ORDER, {"id": order["id"]}, customer))["order"]
    assert paid["payment"] == {"status": "SUCCEEDED", "amount": {"amount": "25.00"}, "provider": "simulated",
                               "failureReason": None}
    # and the stock is committed: 8 left, nothing held in reserve
    await eventually(lambda: _stock_is(router, admin, product_id, available=8, reserved=0), what="stock commit")
    # and the cart no longer holds the ordered units
    await eventually(lambda: _cart_empty(router, customer), what="the cart to drop ordered lines")


async def _stock_is(router, token: str, product_id: str, *, available: int, reserved: int) -> bool:
    stock = await stock_of(router, token, product_id)
    return stock["available"] == available and stock["reserved"] == reserved


async def _cart_empty(router, token: str) -> bool:
    cart = (await router.ok(CART, {"cartId": None}, token))["cart"]
    return cart is None or cart["itemCount"] == 0


async def test_declined_card_cancels_and_returns_the_stock(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 5)
    _, customer = await make_user()
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 3}, customer)

    order = await place_order(router, customer, "tok_chargeDeclined")

    cancelled = await wait_for_status(router, customer, order["id"], {"CANCELLED"})
    assert cancelled["statusHistory"][-1]["reason"] == "PAYMENT_DECLINED"
    assert cancelled["payment"]["status"] == "FAILED" and cancelled["payment"]["failureReason"]
    await eventually(lambda: _stock_is(router, admin, product_id, available=5, reserved=0), what="stock release")


async def test_unanswered_payment_times_out_and_returns_the_stock(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 5)
    _, customer = await make_user()
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, customer)

    order = await place_order(router, customer, "tok_timeout")

    await wait_for_status(router, customer, order["id"], {"AWAITING_PAYMENT"})
    assert await _stock_is(router, admin, product_id, available=4, reserved=1)
    cancelled = await wait_for_status(router, customer, order["id"], {"CANCELLED"}, within=90)
    assert cancelled["statusHistory"][-1]["reason"] == "PAYMENT_TIMEOUT"
    await eventually(lambda: _stock_is(router, admin, product_id, available=5, reserved=0), what="stock release")


async def test_stock_short_at_reservation_cancels_with_out_of_stock(router, make_user) -> None:
    # Given one unit, and two shoppers who each put it in their cart (the cart checks, it does not hold)
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 1)
    shoppers = [(await make_user())[1] for _ in range(2)]
    for token in shoppers:
        await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, token)

    orders = [await place_order(router, token) for token in shoppers]
    # the second is told at once: its order comes back cancelled, nothing reserved for it
    assert [(o["status"], o["cancellationReason"]) for o in orders] == [
        ("AWAITING_PAYMENT", None), ("CANCELLED", "OUT_OF_STOCK")]

    finals = [await wait_for_status(router, token, o["id"], FINAL) for token, o in zip(shoppers, orders, strict=True)]
    assert sorted(f["status"] for f in finals) == ["CANCELLED", "PAID"]
    loser = next(f for f in finals if f["status"] == "CANCELLED")
    assert loser["statusHistory"][-1]["reason"] == "OUT_OF_STOCK"
    assert loser["payment"] is None  # never charged
    await eventually(lambda: _stock_is(router, admin, product_id, available=0, reserved=0), what="stock commit")


async def test_concurrent_replays_of_one_idempotency_key_create_one_order(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    _, variant_id = await stocked_variant(router, admin, 5)
    _, customer = await make_user()
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, customer)
    key = uuid.uuid4().hex

    placed = await asyncio.gather(*(place_order(router, customer, key=key) for _ in range(5)))

    assert len({o["id"] for o in placed}) == 1
    await wait_for_status(router, customer, placed[0]["id"], {"PAID"})
    again = await place_order(router, customer, key=key)  # a later replay: still the same order
    assert again["id"] == placed[0]["id"]
    orders = (await router.ok(MY_ORDERS, {}, customer))["me"]["orders"]
    assert orders["totalCount"] == 1


async def test_200_buyers_for_50_units_exactly_50_paid_and_stock_never_negative(router, platform, make_user,
                                                                                  token_issuer, db_admin) -> None:
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 50)
    buyers = [token_issuer.issue(5_000_000 + i, ["CUSTOMER"]) for i in range(200)]
    await asyncio.gather(*(router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, t) for t in buyers))

    lowest_seen: list[int] = []
    done = asyncio.Event()

    async def watch_stock() -> None:
        # Samples the rows themselves while the saga runs: no moment may show negative availability.
        while not done.is_set():
            row = await db_admin.fetchrow(
                "SELECT min(on_hand - reserved) AS available, min(on_hand) AS on_hand, min(reserved) AS reserved "
                "FROM inventory.stock_levels WHERE variant_id = $1", int(variant_id))
            lowest_seen.append(min(row["available"], row["on_hand"], row["reserved"]))
            await asyncio.sleep(0.02)  # sampling period

    watcher = asyncio.create_task(watch_stock())
    try:
        orders = await asyncio.gather(*(place_order(router, t) for t in buyers))
        await wait_all_final(db_admin, [o["id"] for o in orders])
        finals = await asyncio.gather(*(wait_for_status(router, t, o["id"], FINAL)
                                        for t, o in zip(buyers, orders, strict=True)))
    finally:
        done.set()
        await watcher

    statuses = [f["status"] for f in finals]
    assert statuses.count("PAID") == 50 and statuses.count("CANCELLED") == 150
    assert all(f["statusHistory"][-1]["reason"] == "OUT_OF_STOCK" for f in finals if f["status"] == "CANCELLED")
    await eventually(lambda: _stock_is(router, admin, product_id, available=0, reserved=0), what="commits")
    assert lowest_seen and min(lowest_seen) >= 0


async def test_killing_the_worker_mid_saga_loses_and_repeats_nothing(router, platform, make_user, token_issuer,
                                                                     db_admin) -> None:
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 100)
    buyers = [token_issuer.issue(6_000_000 + i, ["CUSTOMER"]) for i in range(30)]
    await asyncio.gather(*(router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 2}, t) for t in buyers))

    orders = await asyncio.gather(*(place_order(router, t) for t in buyers))
    for worker in platform.worker_health_urls:  # SIGKILL mid-saga: no chance to finish or commit offsets
        platform.kill(worker)
    in_flight = await db_admin.fetchval(
        "SELECT count(*) FROM orders.orders WHERE id = ANY($1::bigint[]) AND status NOT IN ('PAID', 'CANCELLED')",
        [int(o["id"]) for o in orders])
    for worker, health_url in platform.worker_health_urls.items():
        platform.restart(worker, health_url)

    await wait_all_final(db_admin, [o["id"] for o in orders])
    finals = await asyncio.gather(*(wait_for_status(router, t, o["id"], FINAL)
                                    for t, o in zip(buyers, orders, strict=True)))
    assert [f["status"] for f in finals] == ["PAID"] * 30, f"{in_flight} orders were in flight at the kill"
    for final in finals:  # each transition happened once
        history = [h["status"] for h in final["statusHistory"]]
        assert len(history) == len(set(history)), history
    charges = await db_admin.fetchval(
        "SELECT count(*) FROM payments.payments WHERE order_id = ANY($1::bigint[]) AND status = 'SUCCEEDED'",
        [int(o["id"]) for o in orders])
    assert charges == 30
    # stock moved exactly once per order: 100 - 30 * 2 committed, nothing left reserved
    await eventually(lambda: _stock_is(router, admin, product_id, available=40, reserved=0), what="commits")


async def test_cancel_a_paid_order_refunds_it_and_restocks(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 4)
    _, customer = await make_user()
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, customer)
    order = await place_order(router, customer)
    await wait_for_status(router, customer, order["id"], {"PAID"})

    cancelled = (await router.ok(CANCEL, {"id": order["id"]}, customer))["cancelOrder"]

    assert cancelled["status"] == "CANCELLED"
    refunded = await wait_for_status(router, customer, order["id"], {"REFUNDED"})
    assert refunded["payment"]["status"] == "REFUNDED"
    await eventually(lambda: _stock_is(router, admin, product_id, available=4, reserved=0), what="restock")
    assert await router.error_code(CANCEL, {"id": order["id"]}, customer) == "CONFLICT"


async def test_other_users_get_forbidden_for_orders_carts_and_status_streams(router, platform, make_user) -> None:
    _, admin = await make_user("ADMIN")
    _, variant_id = await stocked_variant(router, admin, 5)
    _, owner = await make_user()
    _, stranger = await make_user()
    cart = (await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, owner))["addToCart"]
    order = await place_order(router, owner)

    assert await router.error_code(ORDER, {"id": order["id"]}, stranger) == "FORBIDDEN"
    assert await router.error_code(CANCEL, {"id": order["id"]}, stranger) == "FORBIDDEN"
    assert await router.error_code(CART, {"cartId": cart["id"]}, stranger) == "FORBIDDEN"
    someone_elses = {"cartId": cart["id"], "v": variant_id, "q": 1}
    assert await router.error_code(ADD_TO_CART, someone_elses, stranger) == "FORBIDDEN"
    assert (await router.ok(ORDER, {"id": order["id"]}, admin))["order"]["id"] == order["id"]  # ADMIN may

    ws = await ws_subscribe(platform.router_url, stranger, order["id"])
    try:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    finally:
        await ws.close()
    codes = [e["extensions"]["code"] for e in message["payload"]["errors"]] if message["type"] == "next" else \
        [e["extensions"]["code"] for e in message["payload"]]
    assert codes == ["FORBIDDEN"], message

    async with (httpx.AsyncClient(timeout=30) as http,
                http.stream("POST", platform.router_url,
                            json={"query": ORDER_STATUS, "variables": {"id": order["id"]}},
                            headers={"accept": "text/event-stream", "authorization": f"Bearer {stranger}"}) as sse):
        async for line in sse.aiter_lines():
            if line.startswith("data:") and line[5:].strip():
                payload = json.loads(line[5:])
                assert payload["errors"][0]["extensions"]["code"] == "FORBIDDEN", payload
                break


async def test_order_status_streams_over_sse_to_the_owner(router, platform, make_user) -> None:
    _, admin = await make_user("ADMIN")
    _, variant_id = await stocked_variant(router, admin, 5)
    _, customer = await make_user()
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, customer)
    order = await place_order(router, customer)

    seen: list[str] = []
    async with (httpx.AsyncClient(timeout=30) as http,
                http.stream("POST", platform.router_url,
                            json={"query": ORDER_STATUS, "variables": {"id": order["id"]}},
                            headers={"accept": "text/event-stream", "authorization": f"Bearer {customer}"}) as sse):
        assert sse.headers["content-type"].startswith("text/event-stream")
        async for line in sse.aiter_lines():
            if line.startswith("data:") and line[5:].strip():
                payload = json.loads(line[5:])
                assert not payload.get("errors"), payload
                seen.append(payload["data"]["orderStatusChanged"]["status"])
                if seen[-1] == "PAID":
                    break
    assert seen[-2:] == ["AWAITING_PAYMENT", "PAID"]


async def test_bad_cart_and_order_input_gets_codes_and_changes_nothing(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    _, variant_id = await stocked_variant(router, admin, 3)
    _, customer = await make_user()

    assert await router.error_code(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 0}, customer) == "BAD_USER_INPUT"
    too_many = {"cartId": None, "v": variant_id, "q": 101}
    assert await router.error_code(ADD_TO_CART, too_many, customer) == "BAD_USER_INPUT"
    assert await router.error_code(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 4}, customer) == "OUT_OF_STOCK"
    assert await router.error_code(ADD_TO_CART, {"cartId": None, "v": "999999999", "q": 1}, customer) == "NOT_FOUND"
    not_an_id = {"cartId": None, "v": "not-an-id", "q": 1}
    assert await router.error_code(ADD_TO_CART, not_an_id, customer) == "BAD_USER_INPUT"
    assert await _cart_empty(router, customer)  # refused adds created and changed nothing
    # placing an order without a cart, from an empty cart, or with a bad payment method, is refused
    valid = {"shippingAddress": ADDRESS, "paymentMethod": {"provider": "simulated", "token": "tok_visa"}}
    assert await router.error_code(PLACE_ORDER, {"input": {**valid, "idempotencyKey": uuid.uuid4().hex}},
                                   customer) == "NOT_FOUND"
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, customer)
    await router.ok("mutation { clearCart { id } }", {}, customer)
    assert await router.error_code(PLACE_ORDER, {"input": {**valid, "idempotencyKey": uuid.uuid4().hex}},
                                   customer) == "BAD_USER_INPUT"
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, customer)
    assert await router.error_code(PLACE_ORDER, {"input": {
        "shippingAddress": ADDRESS, "paymentMethod": {"provider": "bitcoin", "token": "x"},
        "idempotencyKey": uuid.uuid4().hex}}, customer) == "BAD_USER_INPUT"
    assert await router.error_code(PLACE_ORDER, {"input": {
        "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
        "idempotencyKey": uuid.uuid4().hex}}, customer) == "BAD_USER_INPUT"
    assert await router.error_code(ORDER, {"id": "not-an-id"}, customer) == "BAD_USER_INPUT"
    assert await router.error_code(PLACE_ORDER, {"input": {
        "shippingAddress": ADDRESS, "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
        "idempotencyKey": uuid.uuid4().hex}}) == "UNAUTHENTICATED"
    orders = (await router.ok(MY_ORDERS, {}, customer))["me"]["orders"]
    assert orders["totalCount"] == 0


async def test_a_guest_cart_read_through_the_router_is_never_stale(router, platform, make_user) -> None:
    # The router keeps answers every subgraph marked shared for a second; a guest cart is one shopper's live state.
    _, admin = await make_user("ADMIN")
    _, variant_id = await stocked_variant(router, admin, 50)
    cart_id = (await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}))["addToCart"]["id"]
    for expected in range(1, 9):
        # A new connection per read: the gateway's workers each keep their own cache, and a mutation evicts
        # entries only in the worker that served it.
        async with httpx.AsyncClient(timeout=30) as fresh:
            body = (await fresh.post(platform.router_url,
                                     json={"query": CART, "variables": {"cartId": cart_id}})).json()
        assert body["data"]["cart"]["itemCount"] == expected, body
        await router.ok(ADD_TO_CART, {"cartId": cart_id, "v": variant_id, "q": 1})
