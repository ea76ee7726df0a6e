"""What the reviews domain runs in the worker process: the `reviews-projections` group (inbox in schema
`reviews`), which keeps this domain's own copy of other domains' facts in its Postgres tables:

    product.created / product.updated  -> products: the product exists and who sells it (an older snapshot,
                                          by updated_at, is ignored)
    product.deleted                    -> products: deleted, for good (no new reviews of it)
    order.placed                       -> order_facts: the order's products
    order.paid                         -> order_facts: paid; with its products known, purchases (user, product)
                                          and the user's reviews of them become verified purchases
                                          (which bumps the response cache's generation, cache.py)

order.placed and order.paid travel on different topics and may arrive in either order: whichever comes second
records the purchases. Every effect is in the inbox's transaction and each handler is idempotent by itself, so a
redelivered (or re-sent) event changes nothing.
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated
from subgraphs.orders.events import OrderPaid, OrderPlaced
from subgraphs.reviews import cache, service
from subgraphs.reviews.models import SCHEMA

CONSUMER_GROUP = "reviews-projections"


async def on_product(session: AsyncSession, product: ProductSnapshot) -> None:
    await service.apply_product_snapshot(session, product)


async def on_product_deleted(session: AsyncSession, product: ProductDeleted) -> None:
    await service.apply_product_deleted(session, product)


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    async def on_order_placed(session: AsyncSession, order: OrderPlaced) -> None:
        if await service.apply_order_placed(session, order):  # reviews became verified purchases
            cache.GENERATION.bump_after_commit(session, resources.redis)

    async def on_order_paid(session: AsyncSession, order: OrderPaid) -> None:
        if await service.apply_order_paid(session, order):
            cache.GENERATION.bump_after_commit(session, resources.redis)

    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers={
        ProductCreated: on_product, ProductUpdated: on_product, ProductDeleted: on_product_deleted,
        OrderPlaced: on_order_placed, OrderPaid: on_order_paid})]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return []
