"""orderStatusChanged in-process through the schema's subscribe(): history replay, then live transitions
published after commit on Redis, no duplicates, gap repair, end of stream, and access rules."""
from __future__ import annotations

import asyncio
from typing import Any

from kernel.graphql import RequestContext
from subgraphs.orders import service
from subgraphs.orders.models import OrderStatus
from subgraphs.orders.schema import schema
from tests.orders.conftest import CANCEL, DELIVER, SHIP, payment_successful, place

SUBSCRIPTION = """subscription($id: ID!) { orderStatusChanged(orderId: $id) {
  orderId seq status previousStatus reason at } }"""
WAIT = 10  # seconds; a guard against hanging, never a condition the test relies on


class Stream:
    def __init__(self, results: Any) -> None:
        self.results = results

    async def next(self) -> dict[str, Any]:
        result = await asyncio.wait_for(self.results.__anext__(), WAIT)
        assert not result.errors, result.errors
        return result.data["orderStatusChanged"]

    async def error_code(self) -> str:
        result = self.results
        if hasattr(result, "__anext__"):
            result = await asyncio.wait_for(result.__anext__(), WAIT)
        assert result.errors, result
        return result.errors[0].extensions["code"]

    async def ended(self) -> bool:
        try:
            await asyncio.wait_for(self.results.__anext__(), WAIT)
        except StopAsyncIteration:
            return True
        return False


async def subscribe(resources, order_id: str, token: str | None) -> Stream:
    context = RequestContext(resources, None, f"Bearer {token}" if token else None)
    return Stream(await schema.subscribe(SUBSCRIPTION, variable_values={"id": order_id}, context_value=context))


def statuses(events: list[dict[str, Any]]) -> list[tuple[int, str, str | None]]:
    return [(e["seq"], e["status"], e["previousStatus"]) for e in events]


async def test_history_replay_then_live_transitions_until_delivered(
        orders_api, orders_resources, customer, saga) -> None:
    ada, admin = customer(), customer("ADMIN")
    order = await place(orders_api, ada)
    await saga.deliver("inventory.reserved", {"order_id": order["id"], "items": []})

    stream = await subscribe(orders_resources, order["id"], ada.token)
    replay = [await stream.next(), await stream.next()]
    assert statuses(replay) == [(1, "PENDING", None), (2, "AWAITING_PAYMENT", "PENDING")]
    assert all(e["orderId"] == order["id"] for e in replay)

    # the subscriber is listening (it subscribed before reading the history): live transitions follow
    await saga.deliver("payment.successful", payment_successful(order["id"]))
    assert statuses([await stream.next()]) == [(3, "PAID", "AWAITING_PAYMENT")]
    await orders_api.ok(SHIP, {"id": order["id"]}, token=admin.token)
    await orders_api.ok(DELIVER, {"id": order["id"]}, token=admin.token)
    assert statuses([await stream.next(), await stream.next()]) == [(4, "SHIPPED", "PAID"),
                                                                    (5, "DELIVERED", "SHIPPED")]
    assert await stream.ended()  # nothing can follow DELIVERED


async def test_a_cancelled_never_paid_order_ends_the_stream_with_its_reason(
        orders_api, orders_resources, customer) -> None:
    ada = customer()
    order = await place(orders_api, ada)
    stream = await subscribe(orders_resources, order["id"], ada.token)
    assert (await stream.next())["status"] == "PENDING"
    await orders_api.ok(CANCEL, {"id": order["id"]}, token=ada.token)
    cancelled = await stream.next()
    assert (cancelled["status"], cancelled["reason"]) == ("CANCELLED", "CUSTOMER_CANCELLED")
    assert await stream.ended()


async def test_a_stream_opened_on_a_finished_order_replays_and_ends(orders_api, orders_resources, customer) -> None:
    ada = customer()
    order = await place(orders_api, ada)
    await orders_api.ok(CANCEL, {"id": order["id"]}, token=ada.token)
    stream = await subscribe(orders_resources, order["id"], ada.token)
    assert [e["status"] for e in (await stream.next(), await stream.next())] == ["PENDING", "CANCELLED"]
    assert await stream.ended()


async def test_a_lost_publish_is_repaired_from_the_history(orders_api, orders_resources, customer, saga,
                                                           settings) -> None:
    ada, admin = customer(), customer("ADMIN")
    order = await place(orders_api, ada)
    stream = await subscribe(orders_resources, order["id"], ada.token)
    assert (await stream.next())["seq"] == 1
    # a transition commits but its publish is lost: committed outside kernel.uow.finish, so its after-commit
    # callbacks never run (as when the process dies right after the commit)
    async with orders_resources.session_factory() as session, session.begin():
        await service.transition(session, orders_resources.redis, settings, int(order["id"]),
                                 from_status=OrderStatus.PENDING, to_status=OrderStatus.AWAITING_PAYMENT)
    # the next published transition reveals the gap; the stream fills it in order, without duplicates
    await saga.deliver("payment.successful", payment_successful(order["id"]))
    assert statuses([await stream.next(), await stream.next()]) == [(2, "AWAITING_PAYMENT", "PENDING"),
                                                                    (3, "PAID", "AWAITING_PAYMENT")]
    await orders_api.ok(SHIP, {"id": order["id"]}, token=admin.token)
    assert (await stream.next())["seq"] == 4


async def test_only_the_owner_or_an_admin_may_watch(orders_api, orders_resources, customer) -> None:
    ada, bob, admin = customer(), customer(), customer("ADMIN")
    order = await place(orders_api, ada)
    assert await (await subscribe(orders_resources, order["id"], bob.token)).error_code() == "FORBIDDEN"
    assert await (await subscribe(orders_resources, order["id"], None)).error_code() == "UNAUTHENTICATED"
    assert await (await subscribe(orders_resources, "987654321", ada.token)).error_code() == "NOT_FOUND"
    admin_stream = await subscribe(orders_resources, order["id"], admin.token)
    assert (await admin_stream.next())["status"] == "PENDING"
    await admin_stream.results.aclose()


async def test_the_token_may_arrive_in_websocket_connection_params(orders_api, orders_resources, customer) -> None:
    ada = customer()
    order = await place(orders_api, ada)
    context = RequestContext(orders_resources, None, None)
    context.connection_params = {"Authorization": f"Bearer {ada.token}"}
    stream = Stream(await schema.subscribe(SUBSCRIPTION, variable_values={"id": order["id"]}, context_value=context))
    assert (await stream.next())["status"] == "PENDING"
    await stream.results.aclose()
