"""Events of the promotions domain.

Emitted via the outbox:
  flashsale.scheduled  key sale_id         {sale_id, variant_id, quantity, starts_at, ends_at}  -> inventory holds
  flashsale.purchased  key reservation_id  {reservation_id, sale_id, user_id, variant_id, product_id, sku, name,
                                            quantity, unit_price, currency}  -> orders creates the order (the
                                            reconciler's path; the request path calls orders directly)
  flashsale.ended      key sale_id         {sale_id, variant_id, sold, total_stock}  -> inventory settles the hold

Consumed by the `promotions` consumer group:
  inventory.flash_sale_held  -> HELD (warm-up: rules and stock into Redis) or UNAVAILABLE
  order.paid                 -> a flash-sale order's units count as paid
  order.cancelled            -> a flash-sale order's units go back to the sale; a coupon redemption is released
Periodic: the flash-sale reconciler (flash_sales.reconcile_sale) for every held, unsettled sale.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from kernel.db import run_callbacks, take_after_commit
from kernel.events import EventEnvelope
from subgraphs.promotions import coupons, flash_sales, repository
from subgraphs.promotions.models import SCHEMA

log = logging.getLogger("nexuscart.promotions.events")

CONSUMED = ("inventory.flash_sale_held", "order.paid", "order.cancelled")


def make_handler(resources: WorkerResources) -> Callable[[AsyncSession, EventEnvelope], Awaitable[None]]:
    redis = resources.redis

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        payload = envelope.payload
        if envelope.event_type == "inventory.flash_sale_held":
            await flash_sales.on_stock_held(session, redis, payload)
        elif envelope.event_type == "order.paid":
            await flash_sales.on_order_paid(redis, payload)
        elif envelope.event_type == "order.cancelled":
            # Both are idempotent per order (the Lua script checks the reservation's state; the coupon release
            # its redemption row), so a retry after a failed commit repeats nothing.
            await flash_sales.on_order_cancelled(redis, payload)
            await coupons.on_order_cancelled(session, payload)
        else:
            log.warning("promotions ignores event type", extra={"event_type": envelope.event_type})

    return handle


def flash_sale_reconciler(resources: WorkerResources) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        report = flash_sales.ReconcileReport()
        async with resources.session_factory() as session:
            sales = await repository.held_sales_to_reconcile(session, flash_sales.utcnow())
        for sale in sales:
            # One transaction per sale: its outbox rows commit, then its Redis bookkeeping runs.
            async with resources.session_factory() as session:
                try:
                    async with session.begin():
                        await flash_sales.reconcile_sale(session, resources.redis, resources.settings, sale, report)
                finally:
                    callbacks = take_after_commit(session)
            await run_callbacks(callbacks)
        if report.forwarded or report.settled:
            log.info("flash-sale reconciler", extra={"forwarded": report.forwarded, "settled": report.settled})
        return report.forwarded + report.settled

    return run


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    return [ConsumerSpec(name="promotions", schema=SCHEMA, topics=CONSUMED, handler=make_handler(resources))]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return [PeriodicTask(name="flash-sale-reconciler",
                         interval_seconds=resources.settings.flash_sale_reconcile_interval_seconds,
                         run=flash_sale_reconciler(resources))]
