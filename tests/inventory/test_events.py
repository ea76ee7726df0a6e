"""The inventory consumer's dispatching handler, as the worker runs it: product events build the variant
projection, order events drive reservations and write the contract's events to the outbox."""
from __future__ import annotations

import asyncio
from typing import Any

from kernel.consumer import WorkerResources
from kernel.events import EventEnvelope
from kernel.ids import next_id
from subgraphs.inventory.consumers import consumer_specs
from tests.event_driver import apply_as_one_batch, apply_interleaved
from tests.inventory.conftest import Stock


def product_event(product_id: int, *variant_ids: int) -> dict[str, Any]:
    return {"product_id": str(product_id), "slug": "tee", "name": "Tee", "brand": None, "description": None,
            "tags": [], "category_id": "1", "seller_id": "2", "min_price": "9.99", "currency": "USD",
            "created_at": "2025-01-01T00:00:00+00:00", "updated_at": "2025-01-01T00:00:00+00:00",
            "variants": [{"variant_id": str(v), "sku": f"SKU-{v}", "price": "9.99", "currency": "USD",
                          "attributes": {}} for v in variant_ids]}


def order_placed(order_id: int, *lines: tuple[int, int]) -> dict[str, Any]:
    return {"order_id": str(order_id), "user_id": "9", "number": "NC-1", "cart_id": "3",
            "items": [{"variant_id": str(v), "product_id": "1", "sku": "S", "name": "N", "quantity": q,
                       "unit_price": "9.99"} for v, q in lines],
            "subtotal": "9.99", "discount": "0.00", "total": "9.99", "currency": "USD",
            "placed_at": "2025-01-01T00:00:00+00:00"}


def test_one_consumer_group_subscribes_to_the_contract_topics(sessions) -> None:
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))
    assert (spec.name, spec.schema) == ("inventory", "inventory")
    assert spec.topics == ("product.created", "product.updated", "order.placed", "order.paid", "order.cancelled",
                           "flashsale.scheduled", "flashsale.ended")


async def test_product_created_registers_variants_with_a_zero_row_per_warehouse(deliver, stock: Stock) -> None:
    # given two warehouses, one of which already holds stock of the first variant (seeded before the event)
    east, west = await stock.warehouse(), await stock.warehouse()
    product_id, first, second = next_id(), next_id(), next_id()
    await stock.db.execute("INSERT INTO inventory.variants (variant_id, product_id) VALUES ($1, $2)", first, product_id)
    await stock.db.execute("INSERT INTO inventory.stock_levels (variant_id, warehouse_id, on_hand) "
                           "VALUES ($1, $2, 9)", first, east)

    # when product.created arrives, and then product.updated with the same variants
    await deliver("product.created", product_event(product_id, first, second))
    await deliver("product.updated", product_event(product_id, first, second))

    # then both variants are known with a row in each warehouse, and the seeded stock is intact
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.variants WHERE product_id = $1", product_id) == 2
    assert await stock.row(first, east) == (9, 0)
    assert await stock.row(first, west) == (0, 0)
    assert await stock.row(second, east) == (0, 0)
    assert await stock.row(second, west) == (0, 0)
    assert await stock.events() == []


async def test_order_placed_writes_inventory_reserved_keyed_by_order(deliver, stock: Stock) -> None:
    # given stock well above the low-stock threshold
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 10})
    order_id = next_id()

    # when order.placed is handled
    await deliver("order.placed", order_placed(order_id, (variant, 2)))

    # then the outbox holds inventory.reserved for the order, then the stock change for the variant
    events = await stock.events()
    assert [(e["event_type"], e["key"]) for e in events] == [
        ("inventory.reserved", str(order_id)), ("inventory.stock_changed", str(variant))]
    assert events[0]["payload"] == {"order_id": str(order_id), "items": [
        {"variant_id": str(variant), "warehouse_id": str(warehouse), "quantity": 2}]}
    assert events[1]["payload"] == {"variant_id": str(variant), "on_hand": 10, "reserved": 2, "available": 8,
                                    "in_stock": True}


async def test_order_placed_for_missing_stock_writes_out_of_stock(deliver, stock: Stock) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 1})
    unknown = next_id()  # a variant inventory never heard of has no stock at all
    order_id = next_id()

    await deliver("order.placed", order_placed(order_id, (variant, 1), (unknown, 1)))

    events = await stock.events()
    assert [(e["event_type"], e["key"], e["payload"]) for e in events] == [
        ("inventory.out_of_stock", str(order_id), {"order_id": str(order_id), "variant_ids": [str(unknown)]})]
    assert await stock.row(variant, warehouse) == (1, 0)


async def test_the_saga_through_the_handler_and_its_redeliveries(deliver, stock: Stock) -> None:
    # given a reserved order
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 6}, threshold=5)
    order_id = next_id()
    placed = order_placed(order_id, (variant, 2))
    await deliver("order.placed", placed)

    # when every order event arrives twice (as new deliveries, so the inbox cannot catch them), order.placed
    # three times: decided already (as after placeOrder's own reservation call), then re-sent by the watchdog
    await deliver("order.placed", placed)
    await deliver("order.placed", {**placed, "reasked": True})
    paid = {"order_id": str(order_id), "user_id": "9", "items": [{"variant_id": str(variant), "quantity": 2}]}
    await deliver("order.paid", paid)
    await deliver("order.paid", paid)
    cancelled = {**paid, "reason": "CUSTOMER_CANCELLED", "previous_status": "PAID"}
    await deliver("order.cancelled", cancelled)
    await deliver("order.cancelled", cancelled)

    # then each step happened once: reserved, committed, restocked, and one low-stock alert (6 -> 4); a second
    # order.placed says nothing, and the re-sent one (what the orders saga watchdog sends when no answer came)
    # only repeats the answer
    assert [e["event_type"] for e in await stock.events() if e["event_type"] != "inventory.stock_changed"] == [
        "inventory.reserved", "inventory.low_stock", "inventory.reserved", "inventory.committed",
        "inventory.released"]
    assert await stock.row(variant, warehouse) == (6, 0)
    assert await stock.reservations(order_id) == [(variant, warehouse, 2, "RESTOCKED")]


async def test_two_workers_batches_over_the_same_variants_queue_instead_of_deadlocking(sessions, stock: Stock) -> None:
    """Worker A's batch takes variant 1 then 2, worker B's takes 2 then 1 (one variant per order, so each order
    alone locks in order). Were each event to lock its rows only when applied, A would hold 1 and wait for 2
    while B holds 2 and waits for 1: Postgres would roll one batch back after its deadlock timeout and it would
    be applied again one event at a time. The group locks the batch's stock rows up front instead."""
    # given two variants in stock
    warehouse = await stock.warehouse()
    first, second = await stock.variant({warehouse: 100}), await stock.variant({warehouse: 100})
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))
    batches = {"A": [(first, next_id()), (second, next_id())], "B": [(second, next_id()), (first, next_id())]}

    # when both workers apply their batch at the same time, each batch's first event finishing before either
    # takes its second: the interleaving that deadlocks
    applied_together = await apply_interleaved(spec, sessions, {name: [
        EventEnvelope.new("order.placed", order_placed(order_id, (variant, 1))) for variant, order_id in orders]
        for name, orders in batches.items()})

    # then each batch committed as one transaction (none was rolled back to go one by one), and every order
    # holds its unit
    assert applied_together == [True, True]
    assert await stock.row(first, warehouse) == (100, 2)
    assert await stock.row(second, warehouse) == (100, 2)


def order_paid(order_id: int, *lines: tuple[int, int]) -> dict[str, Any]:
    return {"order_id": str(order_id), "user_id": "9",
            "items": [{"variant_id": str(v), "quantity": q} for v, q in lines]}


def order_cancelled(order_id: int, *lines: tuple[int, int], previous_status: str) -> dict[str, Any]:
    return {**order_paid(order_id, *lines), "reason": "CUSTOMER_CANCELLED", "previous_status": previous_status}


async def reserve_as_place_order_does(sessions, order_id: int, *lines: tuple[int, int]) -> str:
    """placeOrder's own reservation call (internal.py): decided and answered, announced by no event."""
    from subgraphs.inventory import service
    async with sessions() as session, session.begin():
        return (await service.reserve_for_order(session, order_id, list(lines), announce=False)).outcome


async def test_a_batch_of_paid_orders_does_not_hold_the_stock_rows_placeorder_needs(sessions, stock: Stock) -> None:
    """The usual batch under load: placeOrder decided its orders, and their order.paid only moves stock. Such a
    batch locks no stock row until its last statements, so placeOrder's next reservation of the same hot variant
    goes through while the batch is still being applied. (Were the rows locked up front, the reservation below
    would wait for the batch, and the batch for it: the test would fail on its guard instead.)"""
    # given three orders of one variant reserved by placeOrder's call
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 10}, threshold=0)
    orders = [next_id() for _ in range(3)]
    for order_id in orders:
        assert await reserve_as_place_order_does(sessions, order_id, (variant, 2)) == "RESERVED"
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))
    stock_events_before = len(await stock.events("inventory.stock_changed"))
    late_order = next_id()
    outcome_during_the_batch: list[str] = []

    async def place_another_order() -> None:
        outcome_during_the_batch.append(await asyncio.wait_for(
            reserve_as_place_order_does(sessions, late_order, (variant, 3)), timeout=30))  # a guard, not a timing

    # when a worker applies their order.paid as one batch, and another order is placed while it is under way
    committed_whole = await apply_as_one_batch(spec, sessions, [
        EventEnvelope.new("order.paid", order_paid(order_id, (variant, 2))) for order_id in orders],
        after_first=place_another_order)

    # then the new order was reserved meanwhile, the batch committed whole, and the stock row holds both: the
    # paid units left (10 - 6) and the new order's units are reserved
    assert outcome_during_the_batch == ["RESERVED"]
    assert committed_whole
    assert await stock.row(variant, warehouse) == (4, 3)
    assert [await stock.reservations(order_id) for order_id in orders] == [
        [(variant, warehouse, 2, "COMMITTED")]] * 3
    # and the batch told the variant's new totals once, not once per order (after the new order's reservation
    # had told its own: made while the paid units were still on hand)
    assert (await stock.payloads("inventory.stock_changed"))[stock_events_before:] == [
        {"variant_id": str(variant), "on_hand": 10, "reserved": 9, "available": 1, "in_stock": True},
        {"variant_id": str(variant), "on_hand": 4, "reserved": 3, "available": 1, "in_stock": True}]
    assert len(await stock.events("inventory.committed")) == 3


async def test_a_batch_of_paid_and_cancelled_orders_moves_each_units_once(sessions, stock: Stock) -> None:
    # given four reserved orders over two variants
    warehouse = await stock.warehouse()
    first, second = await stock.variant({warehouse: 10}), await stock.variant({warehouse: 10})
    paid, released, refunded, both = (next_id() for _ in range(4))
    for order_id, lines in ((paid, [(first, 1)]), (released, [(first, 2)]), (refunded, [(second, 3)]),
                            (both, [(first, 1), (second, 1)])):
        assert await reserve_as_place_order_does(sessions, order_id, *lines) == "RESERVED"
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))

    # when one batch pays one, cancels one unpaid, pays then refunds one, and pays one over both variants, with
    # the paid order's event delivered twice under two ids (a re-sent event the inbox cannot catch)
    committed_whole = await apply_as_one_batch(spec, sessions, [
        EventEnvelope.new("order.paid", order_paid(paid, (first, 1))),
        EventEnvelope.new("order.cancelled", order_cancelled(released, (first, 2), previous_status="AWAITING_PAYMENT")),
        EventEnvelope.new("order.paid", order_paid(refunded, (second, 3))),
        EventEnvelope.new("order.paid", order_paid(both, (first, 1), (second, 1))),
        EventEnvelope.new("order.cancelled", order_cancelled(refunded, (second, 3), previous_status="PAID")),
        EventEnvelope.new("order.paid", order_paid(paid, (first, 1)))])

    # then each order's units moved once: the first variant lost the two paid units and got the released two
    # back; the second lost one paid unit, the refunded three went out and came back
    assert committed_whole
    assert await stock.row(first, warehouse) == (8, 0)
    assert await stock.row(second, warehouse) == (9, 0)
    assert await stock.reservations(refunded) == [(second, warehouse, 3, "RESTOCKED")]
    assert await stock.reservations(released) == [(first, warehouse, 2, "RELEASED")]


async def test_two_workers_batches_of_paid_orders_over_the_same_variants_commit_whole(sessions,
                                                                                     stock: Stock) -> None:
    """Batches that lock their stock rows at their end do it in one ordered statement: two of them over the same
    variants, taken in opposite orders, queue instead of deadlocking."""
    # given four orders reserved by placeOrder's call, two per variant
    warehouse = await stock.warehouse()
    first, second = await stock.variant({warehouse: 100}), await stock.variant({warehouse: 100})
    batches = {"A": [(first, next_id()), (second, next_id())], "B": [(second, next_id()), (first, next_id())]}
    for orders in batches.values():
        for variant, order_id in orders:
            assert await reserve_as_place_order_does(sessions, order_id, (variant, 1)) == "RESERVED"
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None))

    # when both workers apply their order.paid batch at the same time, interleaved
    applied_together = await apply_interleaved(spec, sessions, {name: [
        EventEnvelope.new("order.paid", order_paid(order_id, (variant, 1))) for variant, order_id in orders]
        for name, orders in batches.items()})

    # then both committed whole and every paid unit left stock
    assert applied_together == [True, True]
    assert await stock.row(first, warehouse) == (98, 0)
    assert await stock.row(second, warehouse) == (98, 0)


def test_a_batch_locks_up_front_only_for_events_that_decide_or_record_a_first_decision() -> None:
    """What makes prepare_stock_batch lock every stock row up front rather than gather the batch's moves: an
    event that reserves, holds, or records the first decision about an order or a sale (an end that overtook
    its start). Everything else only moves stock that a recorded decision set aside."""
    from subgraphs.inventory.consumers import decides_on_stock
    from subgraphs.orders.events import OrderCancelled, OrderPaid, OrderPlaced
    from subgraphs.promotions.events import FlashSaleEnded, FlashSaleScheduled
    from tests.inventory.test_flash_sale_holds import ended, flash_sale_order, scheduled
    decided_order, new_order, decided_sale, new_sale, variant = 1, 2, 3, 4, 5
    decided = {decided_order, decided_sale}

    def decides(payload_type: Any, payload: dict[str, Any]) -> bool:
        return decides_on_stock(payload_type.from_payload(payload), decided)

    assert decides(OrderPlaced, order_placed(new_order, (variant, 1)))
    assert not decides(OrderPlaced, order_placed(decided_order, (variant, 1)))
    assert not decides(OrderPlaced, flash_sale_order(new_order, decided_sale, variant, 1))  # the hold covers it
    assert not decides(OrderPaid, order_paid(new_order, (variant, 1)))
    assert decides(OrderCancelled, order_cancelled(new_order, (variant, 1), previous_status="PENDING"))
    assert not decides(OrderCancelled, order_cancelled(decided_order, (variant, 1), previous_status="PAID"))
    assert decides(FlashSaleScheduled, scheduled(decided_sale, variant, 5))
    assert decides(FlashSaleEnded, ended(new_sale, variant, 0))
    assert not decides(FlashSaleEnded, ended(decided_sale, variant, 2))
