"""What the shipping domain runs in the worker process: the `shipping-projections` group (inbox in schema
`shipping`), which keeps this domain's own copy of other domains' facts in its Postgres tables:

    product.created / product.updated  -> variants (weight in grams), products (seller); an older snapshot, by
                                          updated_at, is ignored
    order.placed                       -> orders (PLACED) and order_lines (item id, variant, product, quantity)
    order.paid                         -> orders: PAID (shippable)
    order.cancelled                    -> orders: CANCELLED (never shippable again)

Every effect is in the inbox's transaction and each handler is idempotent by itself (upserts that never move an
order's status back), so a redelivered event changes nothing.
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated
from subgraphs.orders.events import OrderCancelled, OrderPaid, OrderPlaced
from subgraphs.shipping import service
from subgraphs.shipping.models import SCHEMA

CONSUMER_GROUP = "shipping-projections"


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    settings = resources.settings

    async def on_product(session: AsyncSession, product: ProductSnapshot) -> None:
        await service.apply_product_snapshot(session, settings, product)

    async def on_product_deleted(session: AsyncSession, product: ProductDeleted) -> None:
        await service.apply_product_deleted(session, product)

    async def on_order_placed(session: AsyncSession, order: OrderPlaced) -> None:
        await service.apply_order_placed(session, order)

    async def on_order_paid(session: AsyncSession, order: OrderPaid) -> None:
        await service.apply_order_paid(session, order)

    async def on_order_cancelled(session: AsyncSession, order: OrderCancelled) -> None:
        await service.apply_order_cancelled(session, order)

    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers={
        ProductCreated: on_product, ProductUpdated: on_product, ProductDeleted: on_product_deleted,
        OrderPlaced: on_order_placed, OrderPaid: on_order_paid, OrderCancelled: on_order_cancelled})]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return []
