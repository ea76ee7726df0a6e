"""What the promotions domain runs in the worker process (docs/flash-sales.md):

The `promotions` consumer group (inbox in schema `promotions`):
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
from kernel.uow import unit_of_work
from subgraphs.inventory.events import FlashSaleHeld
from subgraphs.orders.events import OrderCancelled, OrderPaid
from subgraphs.promotions import coupons, flash_sales, repository
from subgraphs.promotions.models import SCHEMA

log = logging.getLogger("nexuscart.promotions.consumers")

CONSUMER_GROUP = "promotions"


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    redis = resources.redis

    async def on_stock_held(session: AsyncSession, answer: FlashSaleHeld) -> None:
        await flash_sales.on_stock_held(session, redis, answer.sale_id, held=answer.held)

    async def on_order_paid(_session: AsyncSession, order: OrderPaid) -> None:
        await flash_sales.on_order_paid(redis, order.order_id)

    async def on_order_cancelled(session: AsyncSession, order: OrderCancelled) -> None:
        # Both are idempotent per order (the Lua script checks the reservation's state; the coupon release its
        # redemption row), so a retry after a failed commit repeats nothing. Orders without either touch nothing.
        await flash_sales.on_order_cancelled(redis, order.order_id)
        await coupons.release_order(session, order_id=order.order_id, user_id=order.user_id)

    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers={
        FlashSaleHeld: on_stock_held, OrderPaid: on_order_paid, OrderCancelled: on_order_cancelled})]


def flash_sale_reconciler(resources: WorkerResources) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        report = flash_sales.ReconcileReport()
        async with unit_of_work(resources.session_factory) as session:
            sales = await repository.held_sales_to_reconcile(session, flash_sales.utcnow())
        for sale in sales:
            # One transaction per sale: its outbox rows commit, then its Redis bookkeeping runs.
            async with unit_of_work(resources.session_factory) as session:
                await flash_sales.reconcile_sale(session, resources.redis, resources.settings, sale, report)
        if report.forwarded or report.settled:
            log.info("flash-sale reconciler", extra={"forwarded": report.forwarded, "settled": report.settled})
        return report.forwarded + report.settled

    return run


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return [PeriodicTask(name="flash-sale-reconciler",
                         interval_seconds=resources.settings.flash_sale_reconcile_interval_seconds,
                         run=flash_sale_reconciler(resources))]
