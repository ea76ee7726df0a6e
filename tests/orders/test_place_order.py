"""placeOrder through the in-process orders API (real Postgres/Redis; cart and users served by a local fake)."""
from __future__ import annotations

import asyncio
import re

import pytest

from tests.log_capture import captured_records
from tests.orders.conftest import ADDRESS, ORDER, PLACE_ORDER, closed_port, orders_client, outbox, place, place_input


async def count(db_admin, table: str) -> int:
    return await db_admin.fetchval(f"SELECT count(*) FROM orders.{table}")


async def test_place_order_creates_a_pending_order_with_history_saga_and_order_placed(
        orders_api, customer, db_admin) -> None:
    # given a customer with two lines in the cart
    ada = customer()
    # when the order is placed (by an orders service that leaves reservations to the saga)
    order = await place(orders_api, ada)
    # then the order is PENDING, priced from the cart snapshot
    assert order["status"] == "PENDING"
    assert re.fullmatch(r"NC-\d{8}", order["number"])
    assert order["subtotal"] == {"amount": "45.48", "currency": "USD"} == order["total"]
    assert [(i["sku"], i["quantity"], i["unitPrice"]["amount"], i["lineTotal"]["amount"], i["variant"]["id"])
            for i in order["items"]] == [("SKU-111", 2, "19.99", "39.98", "111"), ("SKU-222", 1, "5.50", "5.50", "222")]
    assert order["statusHistory"] == [{"seq": 1, "status": "PENDING", "previousStatus": None, "reason": None}]
    assert order["user"]["id"] == str(ada.user_id)
    assert order["shippingAddress"]["country"] == "GB"
    # and rows were written in one transaction, including the saga state with the payment method
    saga = await db_admin.fetchrow("SELECT * FROM orders.order_sagas WHERE order_id = $1", int(order["id"]))
    assert (saga["step"], saga["payment_provider"], saga["payment_token"]) == ("PENDING", "simulated", "tok_visa")
    assert await count(db_admin, "order_items") == 2
    # and order.placed carries the contract's payload, keyed by the order id
    (event,) = await outbox(db_admin)
    assert event["topic"] == "order.placed" and event["key"] == order["id"]
    payload = event["payload"]
    assert payload["order_id"] == order["id"] and payload["user_id"] == str(ada.user_id)
    assert payload["cart_id"] == ada.cart_id and payload["number"] == order["number"]
    assert payload["items"][0] == {"variant_id": "111", "product_id": "1110", "sku": "SKU-111", "name": "Thing 111",
                                   "quantity": 2, "unit_price": "19.99", "item_id": order["items"][0]["id"]}
    assert (payload["subtotal"], payload["discount"], payload["total"], payload["currency"]) == \
        ("45.48", "0.00", "45.48", "USD")
    assert payload["placed_at"]


async def test_the_callers_authorization_is_forwarded_to_the_peers(orders_api, customer, peers) -> None:
    ada = customer()
    await place(orders_api, ada)
    assert peers.seen_authorization == [f"Bearer {ada.token}"]


async def test_stock_reserved_at_checkout_moves_the_order_to_awaiting_payment_at_once(
        reserving_orders_api, customer, db_admin, peers) -> None:
    orders_api = reserving_orders_api
    # given inventory reserves the order's lines
    ada = customer()
    peers.reservation_outcome = "RESERVED"
    # when
    order = await place(orders_api, ada)
    # then inventory was asked for exactly the order's lines, under the order's id
    assert peers.reservation_requests == [{"order_id": order["id"], "items": [
        {"variant_id": "111", "quantity": 2}, {"variant_id": "222", "quantity": 1}]}]
    # and the order is answered AWAITING_PAYMENT, with both steps in its history, as it is stored
    assert order["status"] == "AWAITING_PAYMENT"
    steps = [{"seq": 1, "status": "PENDING", "previousStatus": None, "reason": None},
             {"seq": 2, "status": "AWAITING_PAYMENT", "previousStatus": "PENDING", "reason": None}]
    assert order["statusHistory"] == steps
    stored = (await orders_api.ok(ORDER, {"id": order["id"]}, token=ada.token))["order"]
    assert (stored["status"], stored["statusHistory"]) == ("AWAITING_PAYMENT", steps)
    # and payments is told to charge it (order.confirmed), with a payment deadline set
    assert [e["topic"] for e in await outbox(db_admin)] == ["order.placed", "order.confirmed"]
    saga = await db_admin.fetchrow("SELECT * FROM orders.order_sagas WHERE order_id = $1", int(order["id"]))
    assert saga["step"] == "AWAITING_PAYMENT" and saga["payment_deadline"] is not None


async def test_out_of_stock_at_checkout_cancels_the_order_at_once(reserving_orders_api, customer, db_admin,
                                                                  peers) -> None:
    orders_api = reserving_orders_api
    ada = customer()
    peers.reservation_outcome = "OUT_OF_STOCK"
    order = await place(orders_api, ada)
    assert (order["status"], order["cancellationReason"]) == ("CANCELLED", "OUT_OF_STOCK")
    assert [(h["status"], h["reason"]) for h in order["statusHistory"]] == [
        ("PENDING", None), ("CANCELLED", "OUT_OF_STOCK")]
    # order.cancelled: the cart, coupons and payments hear it as from the saga
    cancelled = await outbox(db_admin, "order.cancelled")
    assert [(e["payload"]["reason"], e["payload"]["previous_status"]) for e in cancelled] == [
        ("OUT_OF_STOCK", "PENDING")]


async def test_no_answer_from_inventory_leaves_the_order_pending_and_asks_again_through_the_saga(
        reserving_orders_api, customer, db_admin, peers) -> None:
    # given inventory does not answer (a 503: it may have decided all the same)
    ada = customer()
    peers.reservation_outcome = None
    # when
    order = await place(reserving_orders_api, ada)
    # then the order is PENDING, and order.placed goes out twice: as always, and marked `reasked`, which
    # inventory answers even when it decided already (the plain one it would not)
    assert order["status"] == "PENDING" and len(peers.reservation_requests) == 1
    placed = await outbox(db_admin, "order.placed")
    assert [e["payload"].get("reasked") for e in placed] == [None, True]
    assert placed[0]["payload"] == {k: v for k, v in placed[1]["payload"].items() if k != "reasked"}


async def test_a_refusal_from_inventory_leaves_the_order_to_the_saga(
        reserving_orders_api, customer, db_admin, peers) -> None:
    ada = customer()
    peers.reservation_outcome = "REFUSED"  # a 401: inventory decided nothing, so order.placed will ask it
    order = await place(reserving_orders_api, ada)
    assert order["status"] == "PENDING"
    assert [e["payload"].get("reasked") for e in await outbox(db_admin, "order.placed")] == [None]


async def test_a_replay_after_the_reservation_answers_the_order_as_it_stands(reserving_orders_api, customer,
                                                                             peers) -> None:
    orders_api = reserving_orders_api
    ada = customer()
    peers.reservation_outcome = "RESERVED"
    request = place_input(cartId=ada.cart_id)
    first = (await orders_api.ok(PLACE_ORDER, {"input": request}, token=ada.token))["placeOrder"]
    again = (await orders_api.ok(PLACE_ORDER, {"input": request}, token=ada.token))["placeOrder"]
    assert again["id"] == first["id"] and again["status"] == "AWAITING_PAYMENT"
    assert len(peers.reservation_requests) == 1  # a replay reserves nothing more


async def test_same_key_twice_returns_the_same_order_and_writes_nothing_new(orders_api, customer, db_admin,
                                                                            peers) -> None:
    ada = customer()
    request = place_input(cartId=ada.cart_id)
    first = (await orders_api.ok(PLACE_ORDER, {"input": request}, token=ada.token))["placeOrder"]
    # even after the cart was emptied by the first order, a retry answers with that order
    peers.carts[ada.cart_id]["items"] = []
    second = (await orders_api.ok(PLACE_ORDER, {"input": request}, token=ada.token))["placeOrder"]
    assert second["id"] == first["id"] and second["number"] == first["number"]
    assert len(second["items"]) == 2 and second["statusHistory"][0]["status"] == "PENDING"
    assert await count(db_admin, "orders") == 1
    assert len(await outbox(db_admin)) == 1


@pytest.mark.parametrize("concurrency", [2, 5])
async def test_same_key_concurrently_creates_one_order(orders_api, customer, db_admin, concurrency) -> None:
    ada = customer()
    request = place_input()
    results = await asyncio.gather(*(orders_api.ok(PLACE_ORDER, {"input": request}, token=ada.token)
                                     for _ in range(concurrency)))
    assert len({r["placeOrder"]["id"] for r in results}) == 1
    assert await count(db_admin, "orders") == 1
    assert await count(db_admin, "order_items") == 2
    assert await count(db_admin, "order_status_history") == 1
    assert await count(db_admin, "order_sagas") == 1
    assert len(await outbox(db_admin)) == 1


async def test_same_key_with_a_different_request_is_conflict(orders_api, customer, peers, db_admin) -> None:
    ada = customer()
    other_cart = peers.add_cart(ada.user_id, [(333, 1, "1.00")])
    request = place_input(cartId=ada.cart_id)
    await orders_api.ok(PLACE_ORDER, {"input": request}, token=ada.token)
    code = await orders_api.error_code(PLACE_ORDER, {"input": {**request, "cartId": other_cart}}, token=ada.token)
    assert code == "CONFLICT"
    assert await count(db_admin, "orders") == 1


async def test_the_same_key_from_two_users_makes_two_orders(orders_api, customer, db_admin) -> None:
    ada, bob = customer(), customer()
    request = place_input()
    a = (await orders_api.ok(PLACE_ORDER, {"input": request}, token=ada.token))["placeOrder"]
    b = (await orders_api.ok(PLACE_ORDER, {"input": request}, token=bob.token))["placeOrder"]
    assert a["id"] != b["id"]
    assert await count(db_admin, "orders") == 2


@pytest.mark.parametrize("overrides", [
    {"shippingAddressId": "42"},                                  # both address forms
    {"shippingAddress": None},                                    # neither
    {"idempotencyKey": "short"},
    {"idempotencyKey": "k" * 129},
    {"paymentMethod": {"provider": "bitcoin-under-the-mattress", "token": "tok_visa"}},
    {"paymentMethod": {"provider": "simulated", "token": "  "}},
    {"shippingAddress": {**ADDRESS, "country": "GBR"}},
    {"shippingAddress": {**ADDRESS, "line1": ""}},
    {"shippingAddress": {**ADDRESS, "city": "x" * 201}},
    {"shippingAddress": {**ADDRESS, "region": "r" * 201}},
    # a code that cannot exist (tests/orders/test_coupons.py):
    {"couponCode": "NOT A CODE!"},
    {"shippingAddress": None, "shippingAddressId": "not-an-id"},
])
async def test_invalid_input_is_bad_user_input_and_writes_nothing(orders_api, customer, db_admin, peers,
                                                                  overrides) -> None:
    ada = customer()
    code = await orders_api.error_code(PLACE_ORDER, {"input": place_input(**overrides)}, token=ada.token)
    assert code == "BAD_USER_INPUT"
    assert await count(db_admin, "orders") == 0 and await count(db_admin, "outbox") == 0
    assert peers.seen_authorization == []  # refused before any peer was asked


async def test_unknown_coupon_says_so(orders_api, customer) -> None:
    body = await orders_api.raw(PLACE_ORDER, {"input": place_input(couponCode="$$")}, token=customer().token)
    assert body["errors"][0]["message"] == "unknown coupon"


async def test_empty_cart_is_bad_user_input(orders_api, customer, peers, db_admin) -> None:
    ada = customer()
    peers.carts[ada.cart_id]["items"] = []
    assert await orders_api.error_code(PLACE_ORDER, {"input": place_input()}, token=ada.token) == "BAD_USER_INPUT"
    assert await count(db_admin, "orders") == 0


async def test_without_a_token_is_unauthenticated(orders_api, db_admin) -> None:
    assert await orders_api.error_code(PLACE_ORDER, {"input": place_input()}) == "UNAUTHENTICATED"


@pytest.mark.parametrize(("status", "code"), [(401, "UNAUTHENTICATED"), (403, "FORBIDDEN"), (404, "NOT_FOUND"),
                                         (409, "CONFLICT"), (500, "INTERNAL_SERVER_ERROR"),
                                         (502, "INTERNAL_SERVER_ERROR")])
async def test_peer_answers_map_to_codes(orders_api, customer, peers, db_admin, status, code) -> None:
    ada = customer()
    peers.fail_status = status
    body = await orders_api.raw(PLACE_ORDER, {"input": place_input()}, token=ada.token)
    assert body["errors"][0]["extensions"]["code"] == code
    if code == "INTERNAL_SERVER_ERROR":
        assert body["errors"][0]["message"] == "Internal server error"  # no peer detail leaks
    assert await count(db_admin, "orders") == 0


async def test_a_cart_that_is_down_is_a_bare_internal_error(settings, customer, db_admin) -> None:
    # given an orders app whose cart and users peers are at a port nobody listens on
    ada = customer()
    with captured_records("nexuscart.internal_client") as records, closed_port() as down_url:
        async with orders_client(settings, down_url) as api:
            # when
            body = await api.raw(PLACE_ORDER, {"input": place_input()}, token=ada.token)
    # then the client learns nothing about the internals, and no order was written
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["message"] == "Internal server error"
    assert "127.0.0.1" not in str(body) and "cart" not in str(body).lower()
    assert body.get("data") is None
    assert await count(db_admin, "orders") == 0
    # and the failure is logged with its cause, for operators
    assert any(r.getMessage() == "peer call failed" and getattr(r, "peer", None) == "cart" for r in records)


async def test_a_409_from_the_cart_is_a_conflict_with_the_carts_message(orders_api, customer, peers,
                                                                          db_admin) -> None:
    ada = customer()
    peers.fail_status, peers.fail_message = 409, "The cart changed while checking out; review it and retry"
    body = await orders_api.raw(PLACE_ORDER, {"input": place_input()}, token=ada.token)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["message"] == "The cart changed while checking out; review it and retry"
    assert peers.seen_authorization == [f"Bearer {ada.token}"]  # the caller's credentials were forwarded
    # a peer's message is cut to 300 characters
    peers.fail_message = "x" * 1000
    assert (await orders_api.raw(PLACE_ORDER, {"input": place_input()}, token=ada.token)
            )["errors"][0]["message"] == "x" * 300
    assert await count(db_admin, "orders") == 0


async def test_someone_elses_cart_is_forbidden(orders_api, customer) -> None:
    ada, bob = customer(), customer()
    code = await orders_api.error_code(PLACE_ORDER, {"input": place_input(cartId=ada.cart_id)}, token=bob.token)
    assert code == "FORBIDDEN"


async def test_a_saved_address_is_fetched_from_users_and_snapshotted(orders_api, customer, peers) -> None:
    ada, bob = customer(), customer()
    peers.addresses["77"] = {"id": "77", "user_id": str(ada.user_id), "line1": "2 Babbage St", "line2": None,
                             "city": "Paris", "region": None, "postal_code": "75001", "country": "FR"}
    order = await place(orders_api, ada, shippingAddress=None, shippingAddressId="77")
    assert order["shippingAddress"] == {"line1": "2 Babbage St", "city": "Paris", "postalCode": "75001",
                                        "country": "FR"}
    code = await orders_api.error_code(PLACE_ORDER, {"input": place_input(shippingAddress=None,
                                                                          shippingAddressId="77")}, token=bob.token)
    assert code == "FORBIDDEN"
    code = await orders_api.error_code(PLACE_ORDER, {"input": place_input(shippingAddress=None,
                                                                          shippingAddressId="78")}, token=ada.token)
    assert code == "NOT_FOUND"


async def test_a_cart_mixing_currencies_is_refused(orders_api, customer, peers) -> None:
    ada = customer()
    peers.carts[ada.cart_id]["items"][1]["currency"] = "EUR"
    assert await orders_api.error_code(PLACE_ORDER, {"input": place_input()}, token=ada.token) == "BAD_USER_INPUT"


async def test_place_order_is_three_statements_whatever_the_cart_size(orders_api, orders_resources, customer,
                                                                      peers) -> None:
    """The hot path: replay check, one CTE for order+items+history+saga, and the outbox row (whose trigger sends
    the relay's NOTIFY)."""
    from sqlalchemy import event
    engine = orders_resources.session_factory.kw["bind"].sync_engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    ada = customer()
    peers.carts[ada.cart_id]["items"] *= 20  # 40 lines
    event.listen(engine, "before_cursor_execute", count)
    try:
        order = await place(orders_api, ada)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(order["items"]) == 40
    assert len(statements) == 3, statements


@pytest.mark.parametrize("price", ["19.999", "-1.00", "abc", 19.99])
async def test_a_cart_price_that_is_not_an_amount_is_a_malformed_answer_not_rounded(
        orders_api, customer, peers, db_admin, price) -> None:
    # given a cart whose snapshot prices a line with 3 decimals, a negative, garbage or a JSON float
    ada = customer()
    peers.carts[ada.cart_id]["items"][0]["unit_price"] = price
    # when the order is placed, then it is refused as the cart's fault and nothing is written
    body = await orders_api.raw(PLACE_ORDER, {"input": place_input()}, token=ada.token)
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert await count(db_admin, "orders") == 0
