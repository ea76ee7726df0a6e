"""Flash-sale holds against real Postgres, through the inventory consumer's handler as the worker runs it:
flashsale.scheduled sets a sale's units aside (all or none, split over warehouses), flashsale.ended ships
what sold and returns the rest, the sale's own orders reserve nothing, and repeats change nothing."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.consumer import WorkerResources
from kernel.events import EventEnvelope
from kernel.ids import next_id
from kernel.uow import unit_of_work
from subgraphs.inventory import cache, service
from subgraphs.inventory.consumers import consumer_specs
from tests.event_driver import apply_as_one_batch
from tests.inventory.conftest import Stock
from tests.inventory.test_events import order_placed


def scheduled(sale_id: int, variant_id: int, quantity: int) -> dict[str, Any]:
    """flashsale.scheduled as promotions writes it."""
    return {"sale_id": str(sale_id), "variant_id": str(variant_id), "quantity": quantity,
            "starts_at": "2030-01-01T10:00:00+00:00", "ends_at": "2030-01-01T11:00:00+00:00"}


def ended(sale_id: int, variant_id: int, sold: int) -> dict[str, Any]:
    """flashsale.ended as promotions writes it."""
    return {"sale_id": str(sale_id), "variant_id": str(variant_id), "sold": sold, "total_stock": 10}


def flash_sale_order(order_id: int, sale_id: int, variant_id: int, quantity: int) -> dict[str, Any]:
    return {**order_placed(order_id, (variant_id, quantity)), "flash_sale_id": str(sale_id)}


async def hold(sessions: async_sessionmaker[AsyncSession], sale_id: int, variant_id: int,
               quantity: int) -> service.FlashSaleHold:
    async with sessions() as session, session.begin():
        return await service.hold_for_flash_sale(session, sale_id, variant_id, quantity)


async def settle(sessions: async_sessionmaker[AsyncSession], sale_id: int, sold: int) -> service.FlashSaleSettlement:
    async with sessions() as session, session.begin():
        return await service.settle_flash_sale(session, sale_id, sold)


async def available(stock: Stock, variant_id: int) -> int:
    on_hand, reserved = await stock.totals(variant_id)
    return on_hand - reserved


SAGA_EVENTS = ("inventory.reserved", "inventory.out_of_stock", "inventory.committed", "inventory.released")


def test_the_inventory_group_subscribes_to_the_flash_sale_topics(sessions) -> None:
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))
    assert {"flashsale.scheduled", "flashsale.ended"} <= set(spec.topics)


async def test_a_hold_splits_over_two_warehouses_and_takes_exactly_the_quantity(deliver, stock: Stock) -> None:
    # given 6 units in one warehouse and 5 in another
    east, west = await stock.warehouse(), await stock.warehouse()
    variant = await stock.variant({east: 6, west: 5}, threshold=5)
    sale_id = next_id()

    # when the sale is scheduled for 8 units
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 8))

    # then 8 units are held, fullest warehouse first, and available dropped by exactly 8
    assert await stock.reservations(sale_id) == sorted([(variant, east, 6, "RESERVED"), (variant, west, 2, "RESERVED")])
    assert await stock.row(variant, east) == (6, 6)
    assert await stock.row(variant, west) == (5, 2)
    assert await available(stock, variant) == 3
    # and the sale is told, keyed by sale id; the order saga's events are not written
    events = await stock.events()
    assert [(e["event_type"], e["key"]) for e in events] == [
        ("inventory.flash_sale_held", str(sale_id)), ("inventory.stock_changed", str(variant)),
        ("inventory.low_stock", str(variant))]
    assert events[0]["payload"] == {"sale_id": str(sale_id), "variant_id": str(variant), "quantity": 8, "held": True}
    assert events[1]["payload"] == {"variant_id": str(variant), "on_hand": 11, "reserved": 8, "available": 3,
                                    "in_stock": True}


async def test_a_hold_larger_than_available_holds_nothing(deliver, stock: Stock) -> None:
    # given 4 units, one of them already reserved by an order
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 4})
    await deliver("order.placed", order_placed(next_id(), (variant, 1)))
    await stock.db.execute("DELETE FROM inventory.outbox")
    sale_id = next_id()

    # when a sale wants 4
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 4))

    # then nothing is held and the sale is told so, with no stock event and none of the saga's events
    assert await stock.reservations(sale_id) == []
    assert await stock.row(variant, warehouse) == (4, 1)
    assert [(e["event_type"], e["key"], e["payload"]) for e in await stock.events()] == [
        ("inventory.flash_sale_held", str(sale_id),
         {"sale_id": str(sale_id), "variant_id": str(variant), "quantity": 4, "held": False})]


async def test_a_hold_of_an_unknown_variant_is_refused(deliver, stock: Stock) -> None:
    sale_id, unknown = next_id(), next_id()

    await deliver("flashsale.scheduled", scheduled(sale_id, unknown, 1))

    assert await stock.reservations(sale_id) == []
    assert await stock.payloads("inventory.flash_sale_held") == [
        {"sale_id": str(sale_id), "variant_id": str(unknown), "quantity": 1, "held": False}]
    assert await stock.events("inventory.stock_changed") == []


async def test_a_redelivered_schedule_changes_and_emits_nothing(deliver, stock: Stock, sessions) -> None:
    # given a held sale, and a refused one
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 10})
    held_sale, refused_sale = next_id(), next_id()
    await deliver("flashsale.scheduled", scheduled(held_sale, variant, 4))
    await deliver("flashsale.scheduled", scheduled(refused_sale, variant, 7))
    await stock.db.execute("DELETE FROM inventory.outbox")

    # when both are delivered again (new deliveries, past the inbox), one with more stock free by then
    await deliver("flashsale.scheduled", scheduled(held_sale, variant, 4))
    await stock.db.execute("UPDATE inventory.stock_levels SET on_hand = 20 WHERE variant_id = $1", variant)
    await deliver("flashsale.scheduled", scheduled(refused_sale, variant, 7))

    # then the first decisions stand: nothing changed and nothing was emitted
    assert await stock.row(variant, warehouse) == (20, 4)
    assert await stock.reservations(held_sale) == [(variant, warehouse, 4, "RESERVED")]
    assert await stock.reservations(refused_sale) == []
    assert await stock.events() == []
    # and the service reports them as duplicates with the recorded outcome
    again = await hold(sessions, held_sale, variant, 4)
    assert (again.held, again.duplicate) == (True, True)
    assert (await hold(sessions, refused_sale, variant, 7)).held is False


async def test_settling_ships_what_sold_and_returns_the_rest(deliver, stock: Stock) -> None:
    # given a sale holding 10 units over two warehouses (8 + 2)
    east, west = await stock.warehouse(), await stock.warehouse()
    variant = await stock.variant({east: 8, west: 4}, threshold=1)
    sale_id = next_id()
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 10))
    assert await stock.totals(variant) == (12, 10)
    await stock.db.execute("DELETE FROM inventory.outbox")

    # when it ends having sold 3
    await deliver("flashsale.ended", ended(sale_id, variant, 3))

    # then on_hand dropped 3, reserved dropped 10 and available grew 7
    assert await stock.totals(variant) == (9, 0)
    assert await available(stock, variant) == 2 + 7
    # the 3 shipped from the larger hold, whose line now records them; the other line was released whole
    assert await stock.row(variant, east) == (5, 0)
    assert await stock.row(variant, west) == (4, 0)
    assert await stock.reservations(sale_id) == sorted([(variant, east, 3, "COMMITTED"),
                                                        (variant, west, 2, "RELEASED")])
    events = await stock.events()
    assert [(e["event_type"], e["key"], e["payload"]) for e in events] == [
        ("inventory.stock_changed", str(variant),
         {"variant_id": str(variant), "on_hand": 9, "reserved": 0, "available": 9, "in_stock": True})]


async def test_a_batch_settles_a_sale_and_pays_an_order_of_the_same_variant_at_its_end(deliver, stock: Stock,
                                                                                          sessions) -> None:
    # given a sale holding 6 of 10 units and an order reserving 2 more (both decided: the batch locks nothing
    # up front and moves the stock just before it commits)
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 10}, threshold=0)
    sale_id, order_id = next_id(), next_id()
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 6))
    await deliver("order.placed", order_placed(order_id, (variant, 2)))
    assert await stock.row(variant, warehouse) == (10, 8)
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))

    # when one batch ends the sale having sold 4 and pays the order
    committed_whole = await apply_as_one_batch(spec, sessions, [
        EventEnvelope.new("flashsale.ended", ended(sale_id, variant, 4)),
        EventEnvelope.new("order.paid", {"order_id": str(order_id), "user_id": "9",
                                         "items": [{"variant_id": str(variant), "quantity": 2}]})])

    # then 4 + 2 units left stock, the sale's 2 unsold came back, and nothing stays reserved
    assert committed_whole
    assert await stock.row(variant, warehouse) == (4, 0)
    assert await stock.reservations(sale_id) == [(variant, warehouse, 4, "COMMITTED")]
    assert await stock.reservations(order_id) == [(variant, warehouse, 2, "COMMITTED")]


async def test_settling_twice_is_settling_once(deliver, stock: Stock, sessions) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 10})
    sale_id = next_id()
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 10))

    await deliver("flashsale.ended", ended(sale_id, variant, 3))
    await deliver("flashsale.ended", ended(sale_id, variant, 3))
    again = await settle(sessions, sale_id, 3)

    assert not again.changed
    assert await stock.row(variant, warehouse) == (7, 0)
    assert await stock.reservations(sale_id) == [(variant, warehouse, 3, "COMMITTED")]
    assert [e["payload"]["on_hand"] for e in await stock.events("inventory.stock_changed")] == [10, 7]


async def test_selling_out_commits_every_line_and_selling_nothing_releases_them(deliver, stock: Stock) -> None:
    east, west = await stock.warehouse(), await stock.warehouse()
    variant = await stock.variant({east: 5, west: 5})
    sold_out, unsold = next_id(), next_id()
    await deliver("flashsale.scheduled", scheduled(sold_out, variant, 6))
    await deliver("flashsale.scheduled", scheduled(unsold, variant, 4))
    assert await stock.totals(variant) == (10, 10)

    await deliver("flashsale.ended", ended(sold_out, variant, 6))
    await deliver("flashsale.ended", ended(unsold, variant, 0))

    assert await stock.totals(variant) == (4, 0)
    assert {status for *_, status in await stock.reservations(sold_out)} == {"COMMITTED"}
    assert sum(q for _, _, q, _ in await stock.reservations(sold_out)) == 6
    assert {status for *_, status in await stock.reservations(unsold)} == {"RELEASED"}


@pytest.mark.parametrize("sold", [11, -1])
async def test_sold_beyond_the_hold_or_negative_is_refused_and_changes_nothing(sold: int, deliver, stock: Stock,
                                                                              sessions) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 12})
    sale_id = next_id()
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 10))
    await stock.db.execute("DELETE FROM inventory.outbox")

    with pytest.raises(service.InvalidFlashSaleEvent):
        await deliver("flashsale.ended", ended(sale_id, variant, sold))

    # the consumer's transaction rolled back: the hold is intact and can still be settled correctly
    assert await stock.row(variant, warehouse) == (12, 10)
    assert await stock.reservations(sale_id) == [(variant, warehouse, 10, "RESERVED")]
    assert await stock.events() == []
    assert (await settle(sessions, sale_id, 10)).changed
    assert await stock.row(variant, warehouse) == (2, 0)


async def test_a_sale_that_was_never_held_settles_as_a_no_op(deliver, stock: Stock) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 2})
    sale_id = next_id()
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 5))  # refused: held false
    await stock.db.execute("DELETE FROM inventory.outbox")

    await deliver("flashsale.ended", ended(sale_id, variant, 0))

    assert await stock.row(variant, warehouse) == (2, 0)
    assert await stock.reservations(sale_id) == []
    assert await stock.events() == []


async def test_an_end_that_overtakes_its_schedule_keeps_a_late_hold_from_locking_units(deliver, stock: Stock) -> None:
    # given a sale whose flashsale.ended (nothing sold) is handled before its flashsale.scheduled
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    sale_id = next_id()
    await deliver("flashsale.ended", ended(sale_id, variant, 0))

    # when the schedule arrives late
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 5))

    # then nothing is held (the sale is over) and nothing is emitted
    assert await stock.row(variant, warehouse) == (5, 0)
    assert await stock.events() == []
    # and an end that reports sales inventory never held for is refused, to be retried
    with pytest.raises(service.InvalidFlashSaleEvent):
        await deliver("flashsale.ended", ended(next_id(), variant, 2))


async def test_a_flash_sale_order_reserves_nothing_and_its_payment_or_cancellation_changes_nothing(
        deliver, stock: Stock) -> None:
    # given a sale holding 5 of 8 units
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 8}, threshold=0)
    sale_id = next_id()
    await deliver("flashsale.scheduled", scheduled(sale_id, variant, 5))
    await stock.db.execute("DELETE FROM inventory.outbox")
    paid_order, cancelled_order = next_id(), next_id()

    # when two orders of the sale are placed, one paid and the other cancelled
    await deliver("order.placed", flash_sale_order(paid_order, sale_id, variant, 2))
    await deliver("order.placed", flash_sale_order(cancelled_order, sale_id, variant, 1))
    items = [{"variant_id": str(variant), "quantity": 2}]
    await deliver("order.paid", {"order_id": str(paid_order), "user_id": "9", "items": items})
    await deliver("order.cancelled", {"order_id": str(cancelled_order), "user_id": "9", "items": items,
                                      "reason": "CUSTOMER_CANCELLED", "previous_status": "AWAITING_PAYMENT"})

    # then inventory reserved, committed and released nothing for them: only the sale's hold is there
    assert await stock.row(variant, warehouse) == (8, 5)
    assert await stock.reservations(paid_order) == []
    assert await stock.reservations(cancelled_order) == []
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.order_reservations WHERE order_id = $1",
                                   paid_order) == 0
    assert await stock.events() == []
    # and a plain order still sees only what the sale left available
    await deliver("order.placed", order_placed(next_id(), (variant, 4)))
    assert [e["event_type"] for e in await stock.events()] == ["inventory.out_of_stock"]


async def test_a_flash_sale_order_with_a_malformed_sale_id_is_refused(deliver, stock: Stock) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 8})
    order_id = next_id()

    with pytest.raises(ValueError):
        await deliver("order.placed", {**order_placed(order_id, (variant, 1)), "flash_sale_id": "not-an-id"})

    assert await stock.row(variant, warehouse) == (8, 0)


async def test_concurrent_holds_on_one_variant_never_over_reserve(sessions, stock: Stock) -> None:
    # given 10 units over two warehouses
    east, west = await stock.warehouse(), await stock.warehouse()
    variant = await stock.variant({east: 6, west: 4})

    # when two sales of 6 and then twenty sales of 3 ask at once, each in its own transaction
    pair = await asyncio.gather(*(hold(sessions, next_id(), variant, 6) for _ in range(2)))
    assert sorted(h.held for h in pair) == [False, True]
    await settle(sessions, next(h.sale_id for h in pair if h.held), 0)
    many = await asyncio.gather(*(hold(sessions, next_id(), variant, 3) for _ in range(20)))

    # then exactly three of the twenty are held, and no row is over-reserved
    assert sum(h.held for h in many) == 3
    assert await stock.totals(variant) == (10, 9)
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.stock_levels "
                                   "WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand") == 0
    assert await stock.db.fetchval(
        "SELECT coalesce(sum(quantity), 0) FROM inventory.reservations WHERE variant_id = $1 AND status = 'RESERVED'",
        variant) == 9
    assert len(await stock.payloads("inventory.flash_sale_held")) == 22


async def test_a_hold_or_settlement_that_changed_stock_drops_the_cached_answers(sessions, stock: Stock,
                                                                               redis) -> None:
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=redis))

    async def handle(event_type: str, payload: dict[str, Any]) -> bool:
        """True when the handled event bumped the cache generation (the consumer runs the after-commit
        callbacks once its transaction has committed)."""
        before = await cache.GENERATION.current(redis)
        async with unit_of_work(sessions) as session:
            await spec.handler(session, EventEnvelope.new(event_type, payload))
        return await cache.GENERATION.current(redis) != before

    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    sale_id = next_id()
    assert await handle("flashsale.scheduled", scheduled(sale_id, variant, 5))
    assert not await handle("flashsale.scheduled", scheduled(sale_id, variant, 5))
    assert not await handle("flashsale.scheduled", scheduled(next_id(), variant, 1))  # refused: nothing changed
    assert await handle("flashsale.ended", ended(sale_id, variant, 2))
    assert not await handle("flashsale.ended", ended(sale_id, variant, 2))
