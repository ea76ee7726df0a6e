"""`POST /internal/reservations`: placeOrder reserves its order's stock while the shopper waits. The decision is
the consumer's (all lines or none, the first decision about an order final), answered instead of announced."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kernel.ids import next_id
from tests.conftest import GraphQLClient
from tests.inventory.conftest import Stock
from tests.inventory.test_events import order_placed


async def reserve(api: GraphQLClient, token: str | None, body: Any) -> tuple[int, dict[str, Any]]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await api.http.post("/internal/reservations", json=body, headers=headers)
    return response.status_code, response.json()


def lines(order_id: int, *items: tuple[int, int]) -> dict[str, Any]:
    return {"order_id": str(order_id), "items": [{"variant_id": str(v), "quantity": q} for v, q in items]}


async def test_all_lines_are_reserved_and_answered_not_announced(inventory_api, stock: Stock, token_for) -> None:
    warehouse = await stock.warehouse()
    shirt, mug = await stock.variant({warehouse: 3}), await stock.variant({warehouse: 1})
    order_id = next_id()

    status, body = await reserve(inventory_api, token_for(user_id=9), lines(order_id, (shirt, 2), (mug, 1)))

    assert (status, body) == (200, {"outcome": "RESERVED", "short_variant_ids": [], "duplicate": False})
    assert await stock.row(shirt, warehouse) == (3, 2) and await stock.row(mug, warehouse) == (1, 1)
    # orders acts on the answer: no inventory.reserved for the saga, but stock watchers hear of the change
    assert [(e["event_type"], e["payload"]["available"]) for e in await stock.events()] == [
        ("inventory.stock_changed", 1), ("inventory.stock_changed", 0)]


async def test_one_short_line_reserves_nothing(inventory_api, stock: Stock, token_for) -> None:
    warehouse = await stock.warehouse()
    shirt, mug = await stock.variant({warehouse: 3}), await stock.variant({warehouse: 1})

    status, body = await reserve(inventory_api, token_for(user_id=9), lines(next_id(), (shirt, 2), (mug, 2)))

    assert (status, body) == (200, {"outcome": "OUT_OF_STOCK", "short_variant_ids": [str(mug)], "duplicate": False})
    assert await stock.row(shirt, warehouse) == (3, 0) and await stock.row(mug, warehouse) == (1, 0)
    assert await stock.events() == []


async def test_the_call_and_the_order_placed_event_decide_once_whichever_comes_first(
        inventory_api, stock: Stock, token_for, deliver: Callable[..., Any]) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 2})
    first, second = next_id(), next_id()

    # placeOrder's call first, then the order's order.placed: reserved once, nothing said to the saga
    await reserve(inventory_api, token_for(user_id=9), lines(first, (variant, 1)))
    await deliver("order.placed", order_placed(first, (variant, 1)))
    # the event first (the relay was faster), then the call: the recorded answer, nothing changed
    await deliver("order.placed", order_placed(second, (variant, 1)))
    status, body = await reserve(inventory_api, token_for(user_id=9), lines(second, (variant, 1)))

    assert (status, body) == (200, {"outcome": "RESERVED", "short_variant_ids": [], "duplicate": True})
    assert await stock.row(variant, warehouse) == (2, 2)
    assert [e["payload"]["order_id"] for e in await stock.events("inventory.reserved")] == [str(second)]
    # a third order finds none left, however it asks
    status, body = await reserve(inventory_api, token_for(user_id=9), lines(next_id(), (variant, 1)))
    assert body["outcome"] == "OUT_OF_STOCK" and await stock.row(variant, warehouse) == (2, 2)


async def test_bad_bodies_and_callers_are_refused_with_a_code_and_change_nothing(
        inventory_api, stock: Stock, token_for) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    token = token_for(user_id=9)
    cases = [(None, lines(next_id(), (variant, 1)), 401, "UNAUTHENTICATED"),
             ("forged.token", lines(next_id(), (variant, 1)), 401, "UNAUTHENTICATED"),
             (token, {"order_id": str(next_id()), "items": []}, 400, "BAD_USER_INPUT"),
             (token, {"items": [{"variant_id": str(variant), "quantity": 1}]}, 400, "BAD_USER_INPUT"),
             (token, {"order_id": "not-an-id", "items": [{"variant_id": str(variant), "quantity": 1}]}, 400,
              "BAD_USER_INPUT"),
             (token, lines(next_id(), (variant, 0)), 400, "BAD_USER_INPUT"),
             (token, lines(next_id(), (variant, -3)), 400, "BAD_USER_INPUT"),
             (token, {"order_id": str(next_id()), "items": [{"variant_id": str(variant), "quantity": "1"}]}, 400,
              "BAD_USER_INPUT"),
             (token, [1, 2], 400, "BAD_USER_INPUT")]
    for caller, body, status, code in cases:
        got_status, got = await reserve(inventory_api, caller, body)
        assert (got_status, got["code"]) == (status, code), body
        assert "Traceback" not in str(got) and "sqlalchemy" not in str(got).lower()
    assert await stock.row(variant, warehouse) == (5, 0) and await stock.events() == []


async def test_the_call_and_a_consumer_batch_over_the_same_order_queue_instead_of_deadlocking(
        stock: Stock, sessions, db_admin) -> None:
    # Given a consumer batch holding the stock rows of an order it is about to reserve for (its before_batch
    # lock), while placeOrder's call for that same order arrives
    from kernel.consumer import WorkerResources
    from kernel.events import EventEnvelope
    from subgraphs.inventory import service
    from subgraphs.inventory.consumers import consumer_specs
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    order_id = next_id()
    envelope = EventEnvelope.new("order.placed", order_placed(order_id, (variant, 2)))

    async def the_call() -> service.ReservationResult:
        async with sessions() as session, session.begin():
            return await service.reserve_for_order(session, order_id, [(variant, 2)], announce=False)

    async with sessions() as batch, batch.begin():
        await spec.prepare_batch(batch, [envelope])
        call = asyncio.create_task(the_call())
        # the call waits for the batch's lock on the stock row (and must hold nothing the batch needs meanwhile)
        while not await db_admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND query LIKE '%stock_levels%'"):
            assert not call.done(), call
            await asyncio.sleep(0.01)  # polling the condition: the call blocks in another connection
        # When the batch applies the order's order.placed and commits
        await spec.handler(batch, envelope)

    # Then both finish, the first decision stands, and the units are reserved once
    result = await call
    assert (result.outcome, result.duplicate) == ("RESERVED", True)
    assert await stock.row(variant, warehouse) == (5, 2)
