"""Reservation rules against real Postgres: no oversell under concurrency, all-or-nothing, split across
warehouses, commit / release / restock, and that repeating any step changes nothing."""
from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.auth import Principal
from kernel.errors import ErrorCode, Forbidden
from kernel.ids import next_id
from nexuscart.seed import seed_demo_stock
from subgraphs.inventory import service
from tests.inventory.conftest import Stock

ADMIN = Principal(user_id=42, roles=frozenset({"ADMIN"}))


async def reserve(sessions: async_sessionmaker[AsyncSession], order_id: int,
                  items: list[tuple[int, int]]) -> service.ReservationResult:
    async with sessions() as session, session.begin():
        return await service.reserve_for_order(session, order_id, items)


async def commit(sessions: async_sessionmaker[AsyncSession], order_id: int) -> list:
    async with sessions() as session, session.begin():
        return await service.commit_order(session, order_id)


async def release(sessions: async_sessionmaker[AsyncSession], order_id: int) -> list:
    async with sessions() as session, session.begin():
        return await service.release_order(session, order_id)


async def test_200_concurrent_buyers_of_50_units_never_oversell(sessions, stock: Stock) -> None:
    # given a variant with 50 units in one warehouse
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 50})

    # when 200 orders of 1 unit each reserve at once, each in its own transaction
    results = await asyncio.gather(*(reserve(sessions, next_id(), [(variant, 1)]) for _ in range(200)))

    # then exactly 50 got stock and 150 were told it is gone, and the row is exactly full
    assert sum(r.outcome == service.RESERVED for r in results) == 50
    assert sum(r.outcome == service.OUT_OF_STOCK for r in results) == 150
    on_hand, reserved = await stock.row(variant, warehouse)
    assert (on_hand, reserved, on_hand - reserved) == (50, 50, 0)
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.stock_levels "
                                   "WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand") == 0
    assert await stock.db.fetchval("SELECT coalesce(sum(quantity), 0) FROM inventory.reservations "
                                   "WHERE status = 'RESERVED'") == 50
    assert len(await stock.events("inventory.reserved")) == 50
    assert len(await stock.events("inventory.out_of_stock")) == 150


async def test_an_order_with_one_short_line_reserves_nothing(sessions, stock: Stock) -> None:
    # given two variants, the second with fewer units than ordered
    warehouse = await stock.warehouse()
    plenty, scarce = await stock.variant({warehouse: 10}), await stock.variant({warehouse: 1})
    order_id = next_id()

    # when the order asks for 3 of the first and 2 of the second
    result = await reserve(sessions, order_id, [(plenty, 3), (scarce, 2)])

    # then nothing is held, and the event names only the short variant
    assert result.outcome == service.OUT_OF_STOCK
    assert result.short_variant_ids == [scarce]
    assert await stock.row(plenty, warehouse) == (10, 0)
    assert await stock.row(scarce, warehouse) == (1, 0)
    assert await stock.reservations(order_id) == []
    assert await stock.payloads("inventory.out_of_stock") == [
        {"order_id": str(order_id), "variant_ids": [str(scarce)]}]
    assert await stock.events("inventory.stock_changed") == []


async def test_a_line_is_split_over_warehouses_fullest_first(sessions, stock: Stock) -> None:
    # given 3 units in one warehouse and 4 in another
    east, west = await stock.warehouse(), await stock.warehouse()
    variant = await stock.variant({east: 3, west: 4})
    order_id = next_id()

    # when one line asks for 6 (and the same variant on a second line for 1 more)
    result = await reserve(sessions, order_id, [(variant, 6), (variant, 1)])

    # then both warehouses are emptied, the fuller one first, and the event lists both parts
    assert result.outcome == service.RESERVED
    assert await stock.row(variant, west) == (4, 4)
    assert await stock.row(variant, east) == (3, 3)
    [payload] = await stock.payloads("inventory.reserved")
    assert payload["order_id"] == str(order_id)
    assert sorted(payload["items"], key=lambda i: -i["quantity"]) == [
        {"variant_id": str(variant), "warehouse_id": str(west), "quantity": 4},
        {"variant_id": str(variant), "warehouse_id": str(east), "quantity": 3}]
    [changed] = await stock.payloads("inventory.stock_changed")
    assert changed == {"variant_id": str(variant), "on_hand": 7, "reserved": 7, "available": 0, "in_stock": False}


async def test_reserving_an_order_twice_changes_nothing(sessions, stock: Stock) -> None:
    # given an order already reserved
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    order_id = next_id()
    await reserve(sessions, order_id, [(variant, 2)])
    events_before = len(await stock.events())

    # when the same order is reserved again
    again = await reserve(sessions, order_id, [(variant, 2)])

    # then it reports the earlier reservation and holds no more stock
    assert again.duplicate and again.outcome == service.RESERVED
    assert [(line.variant_id, line.quantity) for line in again.lines] == [(variant, 2)]
    assert await stock.row(variant, warehouse) == (5, 2)
    assert len(await stock.events()) == events_before


async def test_an_out_of_stock_decision_is_final(sessions, stock: Stock) -> None:
    # given an order turned away for lack of stock, after which stock arrives
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 0})
    order_id = next_id()
    assert (await reserve(sessions, order_id, [(variant, 1)])).outcome == service.OUT_OF_STOCK
    await stock.db.execute("UPDATE inventory.stock_levels SET on_hand = 10 WHERE variant_id = $1", variant)

    # when the order.placed is seen again
    again = await reserve(sessions, order_id, [(variant, 1)])

    # then the cancelled order does not take stock now
    assert again.duplicate and again.outcome == service.OUT_OF_STOCK
    assert await stock.row(variant, warehouse) == (10, 0)


async def test_commit_takes_units_out_of_stock_once(sessions, stock: Stock) -> None:
    # given a reservation over two warehouses
    east, west = await stock.warehouse(), await stock.warehouse()
    variant = await stock.variant({east: 2, west: 2})
    order_id = next_id()
    await reserve(sessions, order_id, [(variant, 3)])

    # when the order is paid (and the payment event is seen twice)
    first = await commit(sessions, order_id)
    second = await commit(sessions, order_id)

    # then on_hand and reserved both dropped by 3, once
    assert sum(line.quantity for line in first) == 3 and second == []
    assert await stock.totals(variant) == (1, 0)
    assert {s for *_, s in await stock.reservations(order_id)} == {service.COMMITTED}
    [committed] = await stock.payloads("inventory.committed")
    assert sum(i["quantity"] for i in committed["items"]) == 3


async def test_release_returns_reserved_units_once(sessions, stock: Stock) -> None:
    # given a reserved order
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 4})
    order_id = next_id()
    await reserve(sessions, order_id, [(variant, 3)])

    # when it is cancelled, twice
    first = await release(sessions, order_id)
    second = await release(sessions, order_id)

    # then the units are available again, released once
    assert [(line.quantity, line.status) for line in first] == [(3, service.RELEASED)] and second == []
    assert await stock.row(variant, warehouse) == (4, 0)
    assert await stock.payloads("inventory.released") == [{"order_id": str(order_id), "items": [
        {"variant_id": str(variant), "warehouse_id": str(warehouse), "quantity": 3}]}]
    # and a late payment cannot commit what was released
    assert await commit(sessions, order_id) == []
    assert await stock.row(variant, warehouse) == (4, 0)


async def test_cancelling_a_committed_order_restocks_once(sessions, stock: Stock) -> None:
    # given a paid (committed) order
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 4})
    order_id = next_id()
    await reserve(sessions, order_id, [(variant, 3)])
    await commit(sessions, order_id)
    assert await stock.row(variant, warehouse) == (1, 0)

    # when it is cancelled, twice
    first = await release(sessions, order_id)
    second = await release(sessions, order_id)

    # then the units are back on hand, once
    assert [(line.quantity, line.status) for line in first] == [(3, service.RESTOCKED)] and second == []
    assert await stock.row(variant, warehouse) == (4, 0)
    assert {s for *_, s in await stock.reservations(order_id)} == {service.RESTOCKED}


async def test_a_cancel_before_the_placement_blocks_the_late_reservation(sessions, stock: Stock) -> None:
    # given an order cancelled before inventory saw it placed
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 4})
    order_id = next_id()
    assert await release(sessions, order_id) == []

    # when the order.placed arrives late
    result = await reserve(sessions, order_id, [(variant, 1)])

    # then nothing is reserved for the dead order
    assert result.duplicate and result.outcome == service.CANCELLED
    assert await stock.row(variant, warehouse) == (4, 0)


async def test_low_stock_is_announced_once_when_crossing_the_threshold(sessions, stock: Stock) -> None:
    # given 7 units and a threshold of 5
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 7}, threshold=5)

    # when orders take 2 (7 -> 5), then 1 (5 -> 4: crossing), then 1 (4 -> 3)
    for quantity in (2, 1, 1):
        await reserve(sessions, next_id(), [(variant, quantity)])

    # then exactly one alert, for the crossing, and a stock_changed per change
    assert await stock.payloads("inventory.low_stock") == [
        {"variant_id": str(variant), "available": 4, "threshold": 5}]
    assert [p["available"] for p in await stock.payloads("inventory.stock_changed")] == [5, 4, 3]


@pytest.mark.parametrize("quantity", [0, -1, True, 1.5])
async def test_a_line_with_a_bad_quantity_is_refused(sessions, stock: Stock, quantity: object) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    order_id = next_id()
    with pytest.raises(service.InvalidOrderLine):
        await reserve(sessions, order_id, [(variant, quantity)])  # type: ignore[list-item]  # a bad quantity on purpose
    assert await stock.row(variant, warehouse) == (5, 0)
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.order_reservations WHERE order_id = $1",
                                   order_id) == 0


# ---- adjust_stock -----------------------------------------------------------------------------------------

async def adjust(sessions, caller, variant_id, warehouse_id, delta, reason="cycle count"):
    async with sessions() as session, session.begin():
        return await service.adjust_stock(session, caller, variant_id, warehouse_id, delta, reason)


async def test_adjust_stock_creates_the_row_and_audits(sessions, stock: Stock) -> None:
    # given a known variant with no row in a new warehouse
    east, west = await stock.warehouse(), await stock.warehouse()
    variant = await stock.variant({east: 2})
    await stock.db.execute("DELETE FROM inventory.stock_levels WHERE warehouse_id = $1", west)

    # when an admin receives 10 there
    level = await adjust(sessions, ADMIN, variant, west, 10, "  delivery 981  ")

    # then totals include it, and the audit row says who and why
    assert (level.on_hand, level.reserved, level.available, level.in_stock) == (12, 0, 12, True)
    audit = await stock.db.fetchrow("SELECT * FROM inventory.stock_adjustments WHERE variant_id = $1", variant)
    assert (audit["warehouse_id"], audit["delta"], audit["reason"], audit["actor_id"], audit["on_hand_after"]) == \
        (west, 10, "delivery 981", 42, 10)


async def test_adjust_stock_cannot_take_reserved_units(sessions, stock: Stock) -> None:
    # given 5 on hand with 3 reserved
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    await reserve(sessions, next_id(), [(variant, 3)])

    # when an admin removes 3 (only 2 are free)
    with pytest.raises(service.StockBelowReserved) as refused:
        await adjust(sessions, ADMIN, variant, warehouse, -3)

    # then it is a CONFLICT and nothing changed
    assert refused.value.code == ErrorCode.CONFLICT
    assert await stock.row(variant, warehouse) == (5, 3)
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.stock_adjustments") == 0
    # while removing exactly the free units is allowed
    await adjust(sessions, ADMIN, variant, warehouse, -2)
    assert await stock.row(variant, warehouse) == (3, 3)


async def test_adjust_stock_is_admin_only(sessions, stock: Stock) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 5})
    with pytest.raises(Forbidden):
        await adjust(sessions, Principal(user_id=7, roles=frozenset({"SELLER"})), variant, warehouse, 1)
    assert await stock.row(variant, warehouse) == (5, 0)


# ---- seed -------------------------------------------------------------------------------------------------

async def test_seed_demo_stock_fills_two_warehouses_and_respects_existing_stock(sessions, stock: Stock) -> None:
    # given 60 catalog variants, one of which already has real stock in WH-EAST
    variants = [(next_id(), next_id()) for _ in range(60)]
    async with sessions() as session, session.begin():
        first = await seed_demo_stock(session, variants[:1], random.Random(1))
    east = await stock.db.fetchval("SELECT id FROM inventory.warehouses WHERE code = 'WH-EAST'")
    await stock.db.execute(
        "UPDATE inventory.stock_levels SET on_hand = 777 WHERE variant_id = $1 AND warehouse_id = $2",
        variants[0][1], east)

    # when the seed runs for all of them
    async with sessions() as session, session.begin():
        summary = await seed_demo_stock(session, variants, random.Random(7))

    # then there are still two warehouses, every variant is known with a row in each, some are low or sold out
    assert "inventory" in first and "2 warehouses" in summary
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.warehouses") == 2
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.variants") == 60
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.stock_levels") == 120
    totals = [await stock.totals(v) for _, v in variants]
    assert any(o == 0 for o, _ in totals) and any(0 < o < 5 for o, _ in totals) and any(o >= 20 for o, _ in totals)
    assert await stock.row(variants[0][1], east) == (777, 0)
    # and every variant the seed stocked was announced (the hand-stocked first one aside)
    stocked = {p["variant_id"] for p in await stock.payloads("inventory.stock_changed")} - {str(variants[0][1])}
    assert stocked == {str(v) for (_, v), (o, _) in zip(variants[1:], totals[1:], strict=True) if o > 0}


async def test_orders_naming_the_same_variants_in_opposite_order_do_not_deadlock(sessions, stock: Stock) -> None:
    # given two variants in two warehouses, 30 units of each in all
    east, west = await stock.warehouse(), await stock.warehouse()
    a, b = await stock.variant({east: 15, west: 15}), await stock.variant({east: 15, west: 15})

    # when 40 orders of 1 of each run at once, half listing a first and half b first
    results = await asyncio.gather(*(
        reserve(sessions, next_id(), [(a, 1), (b, 1)] if i % 2 else [(b, 1), (a, 1)]) for i in range(40)))

    # then (no deadlock error) exactly 30 were served and each variant is exactly sold out
    assert sum(r.reserved for r in results) == 30
    assert await stock.totals(a) == (30, 30) and await stock.totals(b) == (30, 30)
