"""What the recommendations domain runs in the worker process.

The `recommendations-projections` group (inbox in schema `recommendations`):

    interaction.recorded               -> interactions (the training data), once per interaction_id
    product.created / product.updated  -> products: category, brand, price, tags (an older snapshot is ignored)
                                          and variants: which product each variant is
    product.deleted                    -> products: deleted, for good
    inventory.stock_changed            -> variants: in stock or not; a product is in stock while any variant is
    order.paid                         -> one PURCHASE interaction per product; those products are not
                                          recommended to the buyer for RECOMMENDATIONS_BOUGHT_EXCLUSION_DAYS

Whether a product may be recommended (in stock, not deleted) and what a user just bought are also written to
Redis after each commit (signals.py): the request path reads them there.

Periodic: `recommendations-retrain` retrains the model every RECOMMENDATIONS_RETRAIN_INTERVAL_SECONDS.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated
from subgraphs.inventory.events import StockChanged
from subgraphs.orders.events import OrderPaid
from subgraphs.recommendations import service
from subgraphs.recommendations.events import InteractionRecorded
from subgraphs.recommendations.models import SCHEMA

CONSUMER_GROUP = "recommendations-projections"


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    redis, settings = resources.redis, resources.settings

    async def on_interaction(session: AsyncSession, event: InteractionRecorded) -> None:
        await service.apply_interaction(session, event)

    async def on_product(session: AsyncSession, product: ProductSnapshot) -> None:
        await service.apply_product_snapshot(session, redis, product)

    async def on_product_deleted(session: AsyncSession, product: ProductDeleted) -> None:
        await service.apply_product_deleted(session, redis, product)

    async def on_stock_changed(session: AsyncSession, stock: StockChanged) -> None:
        await service.apply_stock_changed(session, redis, stock)

    async def on_order_paid(session: AsyncSession, order: OrderPaid) -> None:
        await service.apply_order_paid(session, redis, settings, order)

    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers={
        InteractionRecorded: on_interaction, ProductCreated: on_product, ProductUpdated: on_product,
        ProductDeleted: on_product_deleted, StockChanged: on_stock_changed, OrderPaid: on_order_paid},
        latest_only={StockChanged: "variant_id"})]  # totals after the change: of a burst, the newest is enough


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    async def retrain() -> Any:
        return await service.retrain_model(resources.session_factory, resources.redis, resources.settings)

    return [PeriodicTask(name="recommendations-retrain",
                         interval_seconds=resources.settings.recommendations_retrain_interval_seconds, run=retrain)]
