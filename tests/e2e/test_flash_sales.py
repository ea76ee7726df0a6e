"""A flash sale end to end through the router, with every process real: inventory sets the stock aside over
Kafka, buyers race through purchaseFlashSale while a WebSocket subscriber watches the stock, one buyer pays
(the saga charges it), the others' orders time out and give their units back, and after the end the sale
settles with inventory, so Redis, orders and inventory agree."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import websockets

from tests.e2e.test_commerce import ADDRESS, STOCK, eventually, stocked_variant, wait_for_status

CREATE = """mutation($input: CreateFlashSaleInput!) { createFlashSale(input: $input) { id status } }"""
SALE = "query($id: ID!) { flashSale(id: $id) { id status remainingStock totalStock } }"
ISSUE = "mutation($id: ID!) { issueFlashSaleToken(saleId: $id) { token } }"
PURCHASE = """mutation($id: ID!, $token: String!, $key: String!, $q: Int) {
  purchaseFlashSale(saleId: $id, token: $token, idempotencyKey: $key, quantity: $q) {
    status remainingStock order { id status total { amount } } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { id status } }"""
STOCK_SUBSCRIPTION = "subscription($id: ID!) { flashSaleStock(saleId: $id) }"


async def test_flash_sale_sells_exactly_its_stock_and_settles_with_inventory(
        router: Any, platform: Any, make_user: Any, db_admin: asyncpg.Pool) -> None:
    # Given 20 units of a variant, and a 10-unit sale at most 2 per buyer, lasting 35 seconds (slack for a
    # slow machine before the buying starts)
    _, admin = await make_user("ADMIN")
    product_id, variant_id = await stocked_variant(router, admin, 20, price="40.00")
    now = datetime.now(UTC)
    sale_input = {"variantId": variant_id, "salePrice": "10.00", "stock": 10, "perUserLimit": 2,
                  "startsAt": (now - timedelta(seconds=1)).isoformat(),
                  "endsAt": (now + timedelta(seconds=35)).isoformat()}
    _, customer = await make_user()
    assert await router.error_code(CREATE, {"input": sale_input}, customer) == "FORBIDDEN"
    sale = (await router.ok(CREATE, {"input": sale_input}, admin))["createFlashSale"]
    sale_id = sale["id"]

    async def opened() -> bool:
        return (await router.ok(SALE, {"id": sale_id}))["flashSale"]["status"] == "ACTIVE"

    await eventually(opened, what="inventory to hold the sale's stock and promotions to warm it up")
    stock = (await router.ok(STOCK, {"id": product_id}, admin))["product"]["variants"][0]["stock"]
    assert (stock["available"], stock["reserved"]) == (10, 10)

    # A subscriber watches the stock over WebSocket through the router
    ws = await websockets.connect(platform.router_url.replace("http://", "ws://"),
                                  subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": STOCK_SUBSCRIPTION, "variables": {"id": sale_id}}}))

    async def next_stock() -> int:
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert message["type"] == "next", message
        return message["payload"]["data"]["flashSaleStock"]

    assert await next_stock() == 10

    # When 30 buyers try twice each, concurrently
    buyers = [await make_user() for _ in range(30)]

    async def attempt(token: str) -> dict[str, Any]:
        purchase_token = (await router.ok(ISSUE, {"id": sale_id}, token))["issueFlashSaleToken"]["token"]
        return (await router.ok(PURCHASE, {"id": sale_id, "token": purchase_token, "key": uuid.uuid4().hex,
                                           "q": 1}, token))["purchaseFlashSale"]

    jobs = [(user_id, token) for user_id, token in buyers for _ in range(2)]
    results = await asyncio.gather(*(attempt(token) for _, token in jobs))

    # Then exactly 10 units are sold, nobody holds more than 2, and every sold unit is in an order
    statuses = Counter(r["status"] for r in results)
    assert statuses["SUCCESS"] == 10 and set(statuses) <= {"SUCCESS", "SOLD_OUT", "LIMIT_EXCEEDED"}, statuses
    winners: Counter[int] = Counter()
    orders: dict[str, tuple[int, str]] = {}
    for (user_id, token), result in zip(jobs, results, strict=True):
        if result["status"] == "SUCCESS":
            winners[user_id] += 1
            assert result["order"]["status"] == "AWAITING_PAYMENT" and result["order"]["total"]["amount"] == "10.00"
            orders[result["order"]["id"]] = (user_id, token)
    assert max(winners.values()) <= 2 and len(orders) == 10
    seen = []
    while not seen or seen[-1] != 0:
        seen.append(await next_stock())
    assert seen == sorted(seen, reverse=True)

    # One buyer pays; the saga charges the card and the order is PAID
    paid_order, (_, paid_token) = next(iter(orders.items()))
    await router.ok(PAY, {"input": {"orderId": paid_order, "shippingAddress": ADDRESS,
                                    "paymentMethod": {"provider": "simulated", "token": "tok_visa"}}}, paid_token)
    await wait_for_status(router, paid_token, paid_order, {"PAID"})

    # The 9 unpaid orders time out (60 s in tests) and give their units back to the sale
    async def units_returned() -> bool:
        return (await router.ok(SALE, {"id": sale_id}))["flashSale"]["remainingStock"] == 9

    await eventually(units_returned, within=90, what="unpaid orders to return their units")
    cancelled = await db_admin.fetchval("SELECT count(*) FROM orders.orders WHERE flash_sale_id = $1 "
                                        "AND status = 'CANCELLED' AND cancellation_reason = 'PAYMENT_TIMEOUT'",
                                        int(sale_id))
    assert cancelled == 9

    # After the end the sale settles: the paid unit left the warehouse, the other 9 are available again
    async def settled() -> dict[str, Any] | None:
        stock = (await router.ok(STOCK, {"id": product_id}, admin))["product"]["variants"][0]["stock"]
        return stock if stock["reserved"] == 0 else None

    stock = await eventually(settled, within=60, what="the sale to settle with inventory")
    assert stock["available"] == 19
    assert await db_admin.fetchval("SELECT sold_units FROM promotions.flash_sales WHERE id = $1", int(sale_id)) == 1
    assert (await router.ok(SALE, {"id": sale_id}))["flashSale"]["status"] == "ENDED"
    await ws.close()
