"""What the search domain runs in the worker: the `search` consumer group (inbox in schema `search`) keeps the
index in step with the catalog and inventory:

  product.created / product.updated  -> (re)index the product (an older snapshot arriving late is ignored)
  product.deleted                    -> remove it
  inventory.stock_changed            -> the variant's stock, and its product's in-stock flag

The Postgres projection is written in the inbox transaction; with Elasticsearch configured, the changed
documents are also written there before the transaction commits, so a failed write retries the event.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PayloadHandler, PeriodicTask, WorkerResources
from kernel.events import EventPayload
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated
from subgraphs.inventory.events import StockChanged
from subgraphs.search import service
from subgraphs.search.backends import search_engine
from subgraphs.search.backends.base import SearchEngine
from subgraphs.search.models import SCHEMA

CONSUMER_GROUP = "search"


def handlers(engine: SearchEngine) -> dict[type[EventPayload], PayloadHandler]:
    async def on_product(session: AsyncSession, product: ProductSnapshot) -> None:
        if await service.index_product(session, product) and engine.name != "postgres":
            await engine.index(await service.index_documents(session, [product.product_id]))

    async def on_deleted(session: AsyncSession, deleted: ProductDeleted) -> None:
        await service.remove_product(session, deleted.product_id)
        if engine.name != "postgres":
            await engine.remove([deleted.product_id])

    async def on_stock(session: AsyncSession, stock: StockChanged) -> None:
        product_id = await service.apply_stock(session, stock.variant_id, stock.available, stock.in_stock)
        if product_id is not None and engine.name != "postgres":
            await engine.index(await service.index_documents(session, [product_id]))

    handlers_by_type: dict[type[EventPayload], Any] = {
        ProductCreated: on_product, ProductUpdated: on_product, ProductDeleted: on_deleted, StockChanged: on_stock}
    return handlers_by_type


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    engine = resources.extras.get("search_engine") or search_engine(resources.settings)
    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers=handlers(engine))]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return []
