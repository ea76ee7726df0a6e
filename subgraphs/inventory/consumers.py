"""What the inventory domain runs in the worker process: the `inventory` consumer group (inbox in schema
`inventory`). Each handler applies one event type through service.py:

  product.created / product.updated  -> register the variants, zero stock rows in every warehouse
  order.placed                       -> reserve all lines or none -> inventory.reserved | inventory.out_of_stock
                                        (usually placeOrder reserved already, through internal.py: then the
                                        recorded decision stands and nothing is emitted, unless the saga's
                                        watchdog re-sent the event, `reasked`, to hear the answer again)
                                        (an order of a flash sale, `flash_sale_id` set, is skipped: the sale's
                                        hold already covers it, and its order.paid / order.cancelled find no
                                        reservation and change nothing)
  order.paid                         -> commit the reservation -> inventory.committed
  order.cancelled                    -> release (or restock a committed reservation) -> inventory.released
  flashsale.scheduled                -> hold the sale's units, all or none -> inventory.flash_sale_held
  flashsale.ended                    -> sold units leave stock, the rest are released -> inventory.stock_changed

Exact redeliveries stop at the consumer's inbox; anything else that repeats (a re-sent event with a new id,
an order.placed after its order.cancelled, a second flashsale.ended) is absorbed by the reservation statuses
in service.py.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PayloadHandler, PeriodicTask, WorkerResources
from kernel.events import EventPayload
from subgraphs.catalog.events import ProductCreated, ProductSnapshot, ProductUpdated
from subgraphs.inventory import cache, repository, service
from subgraphs.inventory.models import SCHEMA
from subgraphs.orders.events import OrderCancelled, OrderPaid, OrderPlaced
from subgraphs.promotions.events import FlashSaleEnded, FlashSaleScheduled

log = logging.getLogger("nexuscart.inventory.consumers")

CONSUMER_GROUP = "inventory"


async def on_product_changed(session: AsyncSession, product: ProductSnapshot) -> bool:
    # Stock stays zero, but a new variant changes the answer of `variant(id)` (null -> the variant), which
    # the response cache may hold as null: report it so the handler drops the cached answers.
    return await service.register_variants(session, [(product.product_id, v.variant_id) for v in product.variants])


async def on_order_placed(session: AsyncSession, order: OrderPlaced) -> bool:
    if order.flash_sale_id is not None:
        # The sale's hold already set these units aside; reserving again would count them twice. Nothing is
        # recorded, so the order's paid / cancelled events find no reservation either.
        log.info("order.placed of a flash sale: covered by the sale's hold",
                 extra={"order_id": order.order_id, "sale_id": order.flash_sale_id})
        return False
    result = await service.reserve_for_order(session, order.order_id, [(i.variant_id, i.quantity) for i in order.items])
    if result.duplicate:
        # Exact redeliveries stop at the inbox. Decided already: by placeOrder's own call (internal.py), whose
        # answer orders acted on, so nothing is said; or asked again by the saga's watchdog (`reasked`), when
        # no answer came through: then the recorded answer is sent again.
        if order.reasked:
            await service.repeat_recorded_answer(session, order.order_id)
        return False
    return result.reserved


async def on_order_paid(session: AsyncSession, order: OrderPaid) -> bool:
    committed = await service.commit_order(session, order.order_id)
    if not committed:
        log.info("order.paid with nothing reserved to commit", extra={"order_id": order.order_id})
    return bool(committed)


async def on_order_cancelled(session: AsyncSession, order: OrderCancelled) -> bool:
    return bool(await service.release_order(session, order.order_id))


async def on_flash_sale_scheduled(session: AsyncSession, sale: FlashSaleScheduled) -> bool:
    hold = await service.hold_for_flash_sale(session, sale.sale_id, sale.variant_id, sale.quantity)
    return hold.held and not hold.duplicate


async def on_flash_sale_ended(session: AsyncSession, sale: FlashSaleEnded) -> bool:
    return (await service.settle_flash_sale(session, sale.sale_id, sale.sold)).changed


# Each returns whether stock (or the set of known variants) changed, i.e. whether cached answers are stale.
HANDLERS: dict[type[EventPayload], Callable[[AsyncSession, Any], Awaitable[bool]]] = {
    ProductCreated: on_product_changed,
    ProductUpdated: on_product_changed,
    OrderPlaced: on_order_placed,
    OrderPaid: on_order_paid,
    OrderCancelled: on_order_cancelled,
    FlashSaleScheduled: on_flash_sale_scheduled,
    FlashSaleEnded: on_flash_sale_ended,
}


def handlers(redis: Any = None) -> dict[type[EventPayload], PayloadHandler]:
    """The group's handlers, run inside the consumer's inbox transaction. With `redis`, a handled event that
    changed stock drops the subgraph's cached stock answers once the transaction has committed."""

    def invalidating(apply: Callable[[AsyncSession, Any], Awaitable[bool]]) -> PayloadHandler:
        async def handle(session: AsyncSession, event: Any) -> None:
            if await apply(session, event):
                cache.GENERATION.bump_after_commit(session, redis)
        return handle

    return {payload_type: invalidating(apply) for payload_type, apply in HANDLERS.items()}


def stock_variants_of(event: EventPayload) -> list[int]:
    """The variants whose stock rows applying `event` locks."""
    if isinstance(event, OrderPlaced):
        return [] if event.flash_sale_id is not None else [i.variant_id for i in event.items]
    if isinstance(event, OrderPaid | OrderCancelled):
        return [line.variant_id for line in event.items]
    if isinstance(event, FlashSaleScheduled | FlashSaleEnded):
        return [event.variant_id]
    return []


def decides_on_stock(event: EventPayload, decided: set[int]) -> bool:
    """Whether applying `event` reads stock under its locks to decide, or records a first decision (orders and
    sales in `decided` have one already): a reservation for an order placeOrder did not decide, a flash sale's
    hold, or the end of an order or a sale inventory never heard of. Such a first record must come after the
    stock locks, as reserve_for_order's and hold_for_flash_sale's do: the reservation or hold it races with (its
    other event, on another topic, maybe in the other worker) holds the stock rows while it waits for that
    record's row."""
    if isinstance(event, OrderPlaced):
        return event.flash_sale_id is None and event.order_id not in decided
    if isinstance(event, OrderCancelled):
        return event.order_id not in decided
    if isinstance(event, FlashSaleEnded):
        return event.sale_id not in decided
    return isinstance(event, FlashSaleScheduled)


async def prepare_stock_batch(session: AsyncSession, events: list[EventPayload]) -> None:
    """ConsumerSpec.before_batch. Usually placeOrder's own call decided the batch's orders, and their paid and
    cancelled events only move stock: the batch locks nothing up front, and its moves are applied together just
    before it commits (service.defer_stock_moves), so placeOrder's next reservation of the same hot variants
    waits for the batch's last statements only.

    A batch that decides on stock (decides_on_stock) locks every stock row it will touch at once instead, in
    (variant, warehouse) order, and applies its moves as they come: two workers' batches over the same hot
    variants then queue instead of deadlocking, and its reservations see the rows as they are. Either way a
    transaction takes its stock locks in one ordered statement."""
    asked = [e.sale_id if isinstance(e, FlashSaleEnded) else e.order_id for e in events
             if isinstance(e, OrderCancelled | FlashSaleEnded)
             or (isinstance(e, OrderPlaced) and e.flash_sale_id is None)]
    decided = await repository.decided_orders(session, asked) if asked else set()
    if not any(decides_on_stock(event, decided) for event in events):
        service.defer_stock_moves(session)
        return
    await repository.lock_stock(session, [v for event in events
                                          if not (isinstance(event, OrderPlaced) and event.order_id in decided)
                                          for v in stock_variants_of(event)])


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers=handlers(resources.redis), prompt=True,
                         before_batch=prepare_stock_batch)]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return []
