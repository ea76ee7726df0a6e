"""Reads, customer/operator transitions and the state machine through the orders API; the partitioned table."""
from __future__ import annotations

import asyncio

import pytest

from tests.orders.conftest import CANCEL, DELIVER, ORDER, SHIP, outbox, payment_successful, place

USER_ORDERS = """query($id: _Any!, $first: Int, $after: String, $status: OrderStatus) {
  _entities(representations: [$id]) { ... on User {
    orders(first: $first, after: $after, status: $status) {
      edges { cursor node { id status } } pageInfo { hasNextPage endCursor } totalCount } } } }"""
ORDER_ENTITY = """query($rep: _Any!) { _entities(representations: [$rep]) { ... on Order { id number status } } }"""


async def move_to_paid(saga, order_id: str) -> None:
    await saga.deliver("inventory.reserved", {"order_id": order_id, "items": []})
    await saga.deliver("payment.successful", payment_successful(order_id))


async def test_order_is_visible_to_its_owner_and_admins_only(orders_api, customer) -> None:
    ada, bob, admin = customer(), customer(), customer("ADMIN")
    order = await place(orders_api, ada)
    assert (await orders_api.ok(ORDER, {"id": order["id"]}, token=ada.token))["order"]["status"] == "PENDING"
    assert (await orders_api.ok(ORDER, {"id": order["id"]}, token=admin.token))["order"]["id"] == order["id"]
    assert await orders_api.error_code(ORDER, {"id": order["id"]}, token=bob.token) == "FORBIDDEN"
    assert await orders_api.error_code(ORDER, {"id": order["id"]}) == "UNAUTHENTICATED"
    # an unknown id is null (documented on the field), a malformed one is the client's input
    assert (await orders_api.ok(ORDER, {"id": "99999999"}, token=ada.token))["order"] is None
    assert await orders_api.error_code(ORDER, {"id": "abc"}, token=ada.token) == "BAD_USER_INPUT"


async def test_order_entity_resolves_by_key_for_the_owner(orders_api, customer) -> None:
    ada, bob = customer(), customer()
    order = await place(orders_api, ada)
    rep = {"__typename": "Order", "id": order["id"]}
    entity = (await orders_api.ok(ORDER_ENTITY, {"rep": rep}, token=ada.token))["_entities"][0]
    assert entity == {"id": order["id"], "number": order["number"], "status": "PENDING"}
    assert await orders_api.error_code(ORDER_ENTITY, {"rep": rep}, token=bob.token) == "FORBIDDEN"


async def test_user_orders_pages_newest_first_and_filters_by_status(orders_api, customer, saga) -> None:
    ada = customer()
    placed = [await place(orders_api, ada) for _ in range(5)]
    await move_to_paid(saga, placed[1]["id"])
    await move_to_paid(saga, placed[3]["id"])
    rep = {"__typename": "User", "id": str(ada.user_id)}

    seen, after = [], None
    while True:
        page = (await orders_api.ok(USER_ORDERS, {"id": rep, "first": 2, "after": after},
                                    token=ada.token))["_entities"][0]["orders"]
        assert page["totalCount"] == 5
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [o["id"] for o in reversed(placed)]

    paid = (await orders_api.ok(USER_ORDERS, {"id": rep, "status": "PAID"}, token=ada.token))["_entities"][0]["orders"]
    assert [e["node"]["id"] for e in paid["edges"]] == [placed[3]["id"], placed[1]["id"]]
    assert paid["totalCount"] == 2 and paid["pageInfo"]["hasNextPage"] is False


async def test_user_orders_is_private_and_bounded(orders_api, customer) -> None:
    ada, bob, admin = customer(), customer(), customer("ADMIN")
    await place(orders_api, ada)
    rep = {"__typename": "User", "id": str(ada.user_id)}
    assert await orders_api.error_code(USER_ORDERS, {"id": rep}, token=bob.token) == "FORBIDDEN"
    admin_view = (await orders_api.ok(USER_ORDERS, {"id": rep}, token=admin.token))["_entities"][0]["orders"]
    assert admin_view["totalCount"] == 1
    for first in (0, 101, -1):
        got = await orders_api.error_code(USER_ORDERS, {"id": rep, "first": first}, token=ada.token)
        assert got == "BAD_USER_INPUT"
    assert await orders_api.error_code(USER_ORDERS, {"id": rep, "after": "nope"}, token=ada.token) == "BAD_USER_INPUT"


async def test_cancel_order_by_the_owner_before_shipping(orders_api, customer, db_admin) -> None:
    ada, bob = customer(), customer()
    order = await place(orders_api, ada)
    assert await orders_api.error_code(CANCEL, {"id": order["id"]}, token=bob.token) == "FORBIDDEN"
    cancelled = (await orders_api.ok(CANCEL, {"id": order["id"]}, token=ada.token))["cancelOrder"]
    assert cancelled == {"id": order["id"], "status": "CANCELLED", "cancellationReason": "CUSTOMER_CANCELLED"}
    (event,) = await outbox(db_admin, "order.cancelled")
    assert event["payload"]["reason"] == "CUSTOMER_CANCELLED" and event["payload"]["previous_status"] == "PENDING"
    # cancelling twice is not a transition
    assert await orders_api.error_code(CANCEL, {"id": order["id"]}, token=ada.token) == "CONFLICT"
    assert await orders_api.error_code(CANCEL, {"id": "424242"}, token=ada.token) == "NOT_FOUND"


async def test_an_admin_can_cancel_and_ship_and_deliver(orders_api, customer, saga, db_admin) -> None:
    ada, admin = customer(), customer("ADMIN")
    order = await place(orders_api, ada)
    await move_to_paid(saga, order["id"])
    assert await orders_api.error_code(SHIP, {"id": order["id"]}, token=ada.token) == "FORBIDDEN"
    shipped = (await orders_api.ok(SHIP, {"id": order["id"]}, token=admin.token))["markOrderShipped"]
    assert shipped["status"] == "SHIPPED"
    # after shipping the customer cannot cancel any more
    assert await orders_api.error_code(CANCEL, {"id": order["id"]}, token=ada.token) == "CONFLICT"
    assert await orders_api.error_code(CANCEL, {"id": order["id"]}, token=admin.token) == "CONFLICT"
    delivered = (await orders_api.ok(DELIVER, {"id": order["id"]}, token=admin.token))["markOrderDelivered"]
    assert delivered["status"] == "DELIVERED"
    assert [e["topic"] for e in await outbox(db_admin)][-2:] == ["order.shipped", "order.delivered"]

    other = await place(orders_api, ada)
    assert (await orders_api.ok(CANCEL, {"id": other["id"]}, token=admin.token))["cancelOrder"]["status"] == "CANCELLED"


@pytest.mark.parametrize(("steps", "mutation"), [
    ([], SHIP),                      # PENDING -> SHIPPED
    ([], DELIVER),                   # PENDING -> DELIVERED
    (["reserve"], SHIP),             # AWAITING_PAYMENT -> SHIPPED
    (["reserve", "pay"], DELIVER),   # PAID -> DELIVERED
    (["cancel"], SHIP),              # CANCELLED -> SHIPPED
])
async def test_illegal_transitions_are_conflict_and_change_nothing(orders_api, customer, saga, db_admin,
                                                                   steps, mutation) -> None:
    ada, admin = customer(), customer("ADMIN")
    order = await place(orders_api, ada)
    for step in steps:
        if step == "reserve":
            await saga.deliver("inventory.reserved", {"order_id": order["id"], "items": []})
        elif step == "pay":
            await saga.deliver("payment.successful", payment_successful(order["id"]))
        else:
            await orders_api.ok(CANCEL, {"id": order["id"]}, token=ada.token)
    history_before = await db_admin.fetchval("SELECT count(*) FROM orders.order_status_history")
    assert await orders_api.error_code(mutation, {"id": order["id"]}, token=admin.token) == "CONFLICT"
    assert await db_admin.fetchval("SELECT count(*) FROM orders.order_status_history") == history_before


def test_the_state_machine_table_is_exactly_the_contract() -> None:
    from subgraphs.orders.models import OrderStatus as S
    from subgraphs.orders.service import TRANSITIONS
    allowed = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert allowed == {("PENDING", "AWAITING_PAYMENT"), ("PENDING", "CANCELLED"), ("AWAITING_PAYMENT", "PAID"),
                       ("AWAITING_PAYMENT", "CANCELLED"), ("PAID", "SHIPPED"), ("PAID", "CANCELLED"),
                       ("SHIPPED", "DELIVERED"), ("CANCELLED", "REFUNDED"),
                       # refunds of a captured order (payments' refundPayment): partial, then the rest
                       *{(captured, refunded) for captured in ("PAID", "SHIPPED", "DELIVERED")
                         for refunded in ("PARTIALLY_REFUNDED", "REFUNDED")},
                       ("PARTIALLY_REFUNDED", "REFUNDED")}
    assert set(TRANSITIONS) == set(S)


async def test_concurrent_transitions_only_one_wins(orders_api, customer, db_admin) -> None:
    ada = customer()
    order = await place(orders_api, ada)
    results = await asyncio.gather(*(orders_api.raw(CANCEL, {"id": order["id"]}, token=ada.token) for _ in range(5)))
    codes = sorted(r["errors"][0]["extensions"]["code"] if r.get("errors") else "OK" for r in results)
    assert codes == ["CONFLICT"] * 4 + ["OK"]
    assert len(await outbox(db_admin, "order.cancelled")) == 1
    assert await db_admin.fetchval(
        "SELECT count(*) FROM orders.order_status_history WHERE to_status = 'CANCELLED'") == 1


async def test_customer_cancel_racing_the_payment_leaves_one_consistent_outcome(
        orders_api, customer, saga, db_admin) -> None:
    ada = customer()
    order = await place(orders_api, ada)
    await saga.deliver("inventory.reserved", {"order_id": order["id"], "items": []})
    cancel, _ = await asyncio.gather(orders_api.raw(CANCEL, {"id": order["id"]}, token=ada.token),
                                     saga.deliver("payment.successful", payment_successful(order["id"])))
    # whichever came first, the cancel succeeds (from AWAITING_PAYMENT or, having lost, re-read from PAID)
    assert not cancel.get("errors"), cancel
    history = [r["to_status"] for r in await db_admin.fetch(
        "SELECT to_status FROM orders.order_status_history ORDER BY seq")]
    assert history in (["PENDING", "AWAITING_PAYMENT", "CANCELLED"],
                       ["PENDING", "AWAITING_PAYMENT", "PAID", "CANCELLED"])
    assert await db_admin.fetchval("SELECT status_seq FROM orders.orders") == len(history)


async def test_orders_are_hash_partitioned_by_user(orders_api, customer, db_admin) -> None:
    strategy, key = await db_admin.fetchrow(
        "SELECT p.partstrat::text, a.attname FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = 'orders.orders'::regclass")
    assert (strategy, key) == ("h", "user_id")
    partitions = await db_admin.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'orders.orders'::regclass")
    assert partitions == 8
    # rows really land in partitions, each user's orders in one of them
    users = [customer() for _ in range(6)]
    for who in users:
        await place(orders_api, who)
        await place(orders_api, who)
    placement = await db_admin.fetch(
        "SELECT user_id, count(DISTINCT tableoid) AS parts FROM orders.orders GROUP BY user_id")
    assert len(placement) == 6 and all(r["parts"] == 1 for r in placement)
    assert await db_admin.fetchval("SELECT count(*) FROM ONLY orders.orders") == 0
    # and lookups by order id alone have an index
    assert await db_admin.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'orders' AND tablename = 'orders' "
        "AND indexdef LIKE '%(id)'") == 1
