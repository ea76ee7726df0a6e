"""placeOrder with coupons: orders asks the real promotions app (served over real HTTP, its internal redeem
endpoint) for the discount; the cart and users peers are the fakes of tests/orders/conftest.py. The default
cart holds 2 x 19.99 + 1 x 5.50 = 45.48 USD."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kernel.db import create_engine, create_session_factory
from kernel.settings import Settings
from subgraphs.orders.events import OrderCancelled
from subgraphs.promotions import coupons
from tests.conftest import GraphQLClient
from tests.orders.conftest import CANCEL, closed_port, orders_client, outbox, place_input, serve_locally
from tests.promotions.coupon_support import create_coupon, promotions_app

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  id status couponCode subtotal { amount currency } discount { amount currency } total { amount currency } } }"""
ORDER = "query($id: ID!) { order(id: $id) { id couponCode subtotal { amount } discount { amount } total { amount } } }"


@pytest.fixture(scope="module")
async def coupon_promotions(settings: Settings) -> AsyncIterator[tuple[str, GraphQLClient]]:
    """(base URL of the real promotions app over HTTP, an in-process GraphQL client on the same app)."""
    async with promotions_app(settings) as (app, api), serve_locally(app) as url:
        yield url, api


@pytest.fixture(scope="module")
async def coupon_orders(settings: Settings, fake_peers_url: str,
                        coupon_promotions: tuple[str, GraphQLClient]) -> AsyncIterator[GraphQLClient]:
    async with orders_client(settings.model_copy(update={"promotions_service_url": coupon_promotions[0]}),
                             fake_peers_url) as api:
        yield api


@pytest.fixture
def coupon_admin(token_issuer) -> str:
    return token_issuer.issue(1, ["ADMIN"])


async def new_coupon(coupon_promotions: tuple[str, GraphQLClient], admin: str, **fields: Any) -> dict[str, Any]:
    return await create_coupon(coupon_promotions[1], admin, **fields)


async def redeemed(db_admin, code: str) -> int:
    return await db_admin.fetchval("SELECT times_redeemed FROM promotions.coupons WHERE code = $1", code)


async def orders_count(db_admin) -> int:
    return await db_admin.fetchval("SELECT count(*) FROM orders.orders")


async def test_the_discount_is_carried_into_the_order_and_its_event(coupon_orders, coupon_promotions, coupon_admin,
                                                                    customer, db_admin) -> None:
    coupon = await new_coupon(coupon_promotions, coupon_admin, code="SAVE10", value="10")
    ada = customer()

    order = (await coupon_orders.ok(PLACE, {"input": place_input(couponCode=" save10 ")}, ada.token))["placeOrder"]

    assert order["couponCode"] == "SAVE10" and order["status"] == "PENDING"
    assert (order["subtotal"], order["discount"], order["total"]) == (
        {"amount": "45.48", "currency": "USD"}, {"amount": "4.55", "currency": "USD"},
        {"amount": "40.93", "currency": "USD"})
    assert (await coupon_orders.ok(ORDER, {"id": order["id"]}, ada.token))["order"] == {
        "id": order["id"], "couponCode": "SAVE10", "subtotal": {"amount": "45.48"}, "discount": {"amount": "4.55"},
        "total": {"amount": "40.93"}}
    (placed,) = await outbox(db_admin, "order.placed")
    assert (placed["payload"]["discount"], placed["payload"]["total"], placed["payload"]["coupon_code"]) == (
        "4.55", "40.93", "SAVE10")
    assert await redeemed(db_admin, coupon["code"]) == 1
    redemption = await db_admin.fetchrow("SELECT order_id, user_id, discount FROM promotions.coupon_redemptions")
    assert (str(redemption["order_id"]), redemption["user_id"], str(redemption["discount"])) == (
        order["id"], ada.user_id, "4.55")


async def test_the_carts_coupon_is_redeemed_when_the_input_names_none(coupon_orders, coupon_promotions, coupon_admin,
                                                                      customer, peers, db_admin) -> None:
    await new_coupon(coupon_promotions, coupon_admin, code="CART-FIVE", kind="FIXED", value="5")
    await new_coupon(coupon_promotions, coupon_admin, code="INPUT-TEN", kind="FIXED", value="10")
    ada, bob = customer(), customer()
    peers.carts[ada.cart_id]["coupon_code"] = "CART-FIVE"
    peers.carts[bob.cart_id]["coupon_code"] = "CART-FIVE"

    from_cart = (await coupon_orders.ok(PLACE, {"input": place_input()}, ada.token))["placeOrder"]
    from_input = (await coupon_orders.ok(PLACE, {"input": place_input(couponCode="INPUT-TEN")},
                                         bob.token))["placeOrder"]

    assert (from_cart["couponCode"], from_cart["total"]["amount"]) == ("CART-FIVE", "40.48")
    assert (from_input["couponCode"], from_input["total"]["amount"]) == ("INPUT-TEN", "35.48")  # the input wins
    assert await redeemed(db_admin, "CART-FIVE") == 1 and await redeemed(db_admin, "INPUT-TEN") == 1


async def test_usage_limit_10_with_50_concurrent_checkouts_gives_exactly_10_discounted_orders(
        coupon_orders, coupon_promotions, coupon_admin, customer, db_admin) -> None:
    # given a coupon good for 10 redemptions and 50 customers with a cart each
    await new_coupon(coupon_promotions, coupon_admin, code="FIRST-10", kind="FIXED", value="7.50", usageLimit=10)
    shoppers = [customer() for _ in range(50)]

    # when they all check out with it at once
    bodies = await asyncio.gather(*[coupon_orders.raw(PLACE, {"input": place_input(couponCode="FIRST-10")}, s.token)
                                    for s in shoppers])

    # then exactly 10 orders exist, each carrying the discount, and the other 40 were refused with no order
    placed = [b["data"]["placeOrder"] for b in bodies if not b.get("errors")]
    refused = [b["errors"][0] for b in bodies if b.get("errors")]
    assert len(placed) == 10 and len(refused) == 40
    assert all((o["couponCode"], o["discount"]["amount"], o["total"]["amount"]) == ("FIRST-10", "7.50", "37.98")
               for o in placed)
    assert {(e["message"], e["extensions"]["code"], e["extensions"].get("field")) for e in refused} == {
        ("This coupon has been fully redeemed", "CONFLICT", "couponCode")}
    rows = await db_admin.fetch("SELECT id, coupon_code, discount FROM orders.orders")
    assert len(rows) == 10 and all(r["coupon_code"] == "FIRST-10" and str(r["discount"]) == "7.50" for r in rows)
    assert len(await outbox(db_admin, "order.placed")) == 10
    assert await redeemed(db_admin, "FIRST-10") == 10
    redemptions = await db_admin.fetch("SELECT order_id FROM promotions.coupon_redemptions")
    redemption_orders = {r["order_id"] for r in redemptions}
    assert redemption_orders == {r["id"] for r in rows}  # every redemption belongs to an order, and vice versa


async def test_a_replayed_place_order_redeems_once_even_when_concurrent(coupon_orders, coupon_promotions,
                                                                        coupon_admin, customer, db_admin) -> None:
    await new_coupon(coupon_promotions, coupon_admin, code="REPLAY", value="10", usageLimit=3, perUserLimit=3)
    ada, bob = customer(), customer()
    ada_input = place_input(couponCode="REPLAY")
    bob_input = place_input(couponCode="REPLAY")

    # sequential retry of one request
    first = (await coupon_orders.ok(PLACE, {"input": ada_input}, ada.token))["placeOrder"]
    again = (await coupon_orders.ok(PLACE, {"input": ada_input}, ada.token))["placeOrder"]
    # and 8 copies of one request at once
    copies = await asyncio.gather(*[coupon_orders.raw(PLACE, {"input": bob_input}, bob.token) for _ in range(8)])

    assert again == first
    assert all(not c.get("errors") for c in copies), [c.get("errors") for c in copies]
    assert len({c["data"]["placeOrder"]["id"] for c in copies}) == 1
    assert copies[0]["data"]["placeOrder"]["discount"]["amount"] == "4.55"
    assert await orders_count(db_admin) == 2
    assert await redeemed(db_admin, "REPLAY") == 2
    assert await db_admin.fetchval("SELECT count(*) FROM promotions.coupon_redemptions") == 2


async def test_refused_coupons_create_no_order(coupon_orders, coupon_promotions, coupon_admin, customer,
                                               db_admin) -> None:
    await new_coupon(coupon_promotions, coupon_admin, code="BIG-SPENDER", value="10", minSubtotal="100")
    await new_coupon(coupon_promotions, coupon_admin, code="JUST-ONCE", value="10", perUserLimit=1)
    ada = customer()
    await coupon_orders.ok(PLACE, {"input": place_input(couponCode="JUST-ONCE")}, ada.token)
    before = await orders_count(db_admin)

    async def refusal(code: str) -> tuple[str, str, str]:
        body = await coupon_orders.raw(PLACE, {"input": place_input(couponCode=code)}, ada.token)
        error = body["errors"][0]
        assert body.get("data") is None
        return error["extensions"]["code"], error["extensions"].get("field"), error["message"]

    assert await refusal("NO-SUCH-CODE") == ("BAD_USER_INPUT", "couponCode", "Unknown coupon code")
    assert await refusal("BIG-SPENDER") == ("BAD_USER_INPUT", "couponCode",
                                            "This coupon requires a subtotal of at least 100.00 USD")
    assert await refusal("JUST-ONCE") == ("CONFLICT", "couponCode",
                                          "You have already used this coupon as often as it allows")
    await db_admin.execute("UPDATE promotions.coupons SET starts_at = now() - interval '2 days', "
                           "ends_at = now() - interval '1 day' WHERE code = 'BIG-SPENDER'")
    assert await refusal("BIG-SPENDER") == ("CONFLICT", "couponCode", "This coupon has expired")
    assert await orders_count(db_admin) == before == 1
    assert len(await outbox(db_admin, "order.placed")) == 1
    assert await redeemed(db_admin, "JUST-ONCE") == 1 and await redeemed(db_admin, "BIG-SPENDER") == 0


async def test_cancelling_the_order_gives_the_slot_back(coupon_orders, coupon_promotions, coupon_admin, customer,
                                                        db_admin, settings) -> None:
    await new_coupon(coupon_promotions, coupon_admin, code="LAST-ONE", value="10", usageLimit=1)
    ada, bob = customer(), customer()
    order = (await coupon_orders.ok(PLACE, {"input": place_input(couponCode="LAST-ONE")}, ada.token))["placeOrder"]
    assert (await coupon_orders.error_code(PLACE, {"input": place_input(couponCode="LAST-ONE")}, bob.token)
            == "CONFLICT")

    # when ada cancels, and promotions' consumer handles the order.cancelled event orders emitted
    await coupon_orders.ok(CANCEL, {"id": order["id"]}, ada.token)
    (cancelled,) = await outbox(db_admin, "order.cancelled")
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            order_cancelled = OrderCancelled.from_payload(cancelled["payload"])
            await coupons.release_order(session, order_id=order_cancelled.order_id, user_id=order_cancelled.user_id)
    finally:
        await engine.dispose()

    # then the slot is free again: bob's order now carries the discount
    assert await redeemed(db_admin, "LAST-ONE") == 0
    bobs = (await coupon_orders.ok(PLACE, {"input": place_input(couponCode="LAST-ONE")}, bob.token))["placeOrder"]
    assert bobs["discount"]["amount"] == "4.55"
    assert await redeemed(db_admin, "LAST-ONE") == 1


async def test_promotions_down_is_a_bare_internal_error_and_no_order(settings, fake_peers_url, customer,
                                                                     db_admin) -> None:
    ada = customer()
    with closed_port() as down_url:
        async with orders_client(settings.model_copy(update={"promotions_service_url": down_url}),
                                 fake_peers_url) as api:
            body = await api.raw(PLACE, {"input": place_input(couponCode="ANY-CODE")}, ada.token)
            no_coupon = await api.ok(PLACE, {"input": place_input(idempotencyKey=f"k-{uuid.uuid4().hex}")},
                                     ada.token)

    assert body["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "127.0.0.1" not in str(body) and "promotions" not in str(body).lower()
    # an order without a coupon never asks promotions
    assert no_coupon["placeOrder"]["couponCode"] is None and no_coupon["placeOrder"]["discount"]["amount"] == "0.00"
    assert await orders_count(db_admin) == 1


async def test_a_key_raced_by_a_request_without_coupon_leaves_no_use_held(coupon_orders, coupon_promotions,
                                                                          coupon_admin, customer, db_admin) -> None:
    # given 12 customers who each send two different requests under one idempotency key at once, one with a
    # coupon and one without (a client bug); whichever wins, no use of the coupon may stay held by an order
    # that does not exist
    await new_coupon(coupon_promotions, coupon_admin, code="RACED", value="10", usageLimit=100)
    shoppers = [customer() for _ in range(12)]

    async def race(shopper) -> None:
        key = f"race-{uuid.uuid4().hex}"
        await asyncio.gather(coupon_orders.raw(PLACE, {"input": place_input(idempotencyKey=key)}, shopper.token),
                             coupon_orders.raw(PLACE, {"input": place_input(idempotencyKey=key, couponCode="RACED")},
                                               shopper.token))

    await asyncio.gather(*[race(s) for s in shoppers])

    # then one order per customer, and the uses held are exactly those of the orders carrying the coupon
    assert await orders_count(db_admin) == 12
    with_coupon = await db_admin.fetchval("SELECT count(*) FROM orders.orders WHERE coupon_code = 'RACED'")
    assert await redeemed(db_admin, "RACED") == with_coupon
    held = await db_admin.fetch("SELECT order_id FROM promotions.coupon_redemptions WHERE released_at IS NULL")
    orders = {r["id"] for r in await db_admin.fetch("SELECT id FROM orders.orders WHERE coupon_code = 'RACED'")}
    assert {r["order_id"] for r in held} == orders
