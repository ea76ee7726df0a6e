"""What the search domain runs in the worker: the `search` consumer group (inbox in schema `search`) keeps the
index in step with the catalog and inventory:

  product.created / product.updated  -> (re)index the product (an older snapshot arriving late is ignored)
  product.deleted                    -> remove it
  inventory.stock_changed            -> the variant's stock, and its product's in-stock flag

Each change bumps the search generation once committed (cache.py), so no cached answer outlives it. A
periodic task drains the query-log stream (the searches the subgraph served) into search.query_log.

The Postgres projection is written in the inbox transaction; with Elasticsearch configured, the changed
documents are also written there before the transaction commits, so a failed write retries the event.
"""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PayloadHandler, PeriodicTask, WorkerResources
from kernel.events import EventPayload
from kernel.uow import unit_of_work
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated
from subgraphs.inventory.events import StockChanged
from subgraphs.search import service
from subgraphs.search.backends import search_engine
from subgraphs.search.backends.base import SearchEngine
from subgraphs.search.cache import drain_query_log
from subgraphs.search.models import SCHEMA

CONSUMER_GROUP = "search"
QUERY_LOG_DRAIN_SECONDS = 2.0


def handlers(engine: SearchEngine, redis: Redis | None = None) -> dict[type[EventPayload], PayloadHandler]:
    """With `redis`, a handled event that changed what a search answers drops the cached answers once the inbox
    transaction commits (cache.py)."""
    async def on_product(session: AsyncSession, product: ProductSnapshot) -> None:
        if await service.index_product(session, product, redis) and engine.name != "postgres":
            await engine.index(await service.index_documents(session, [product.product_id]))

    async def on_deleted(session: AsyncSession, deleted: ProductDeleted) -> None:
        await service.remove_product(session, deleted.product_id, redis)
        if engine.name != "postgres":
            await engine.remove([deleted.product_id])

    async def on_stock(session: AsyncSession, stock: StockChanged) -> None:
        product_id = await service.apply_stock(session, stock.variant_id, stock.available, stock.in_stock, redis)
        if product_id is not None and engine.name != "postgres":
            await engine.index(await service.index_documents(session, [product_id]))

    handlers_by_type: dict[type[EventPayload], Any] = {
        ProductCreated: on_product, ProductUpdated: on_product, ProductDeleted: on_deleted, StockChanged: on_stock}
    return handlers_by_type


async def lock_batch_vocabulary(session: AsyncSession, events: list[EventPayload]) -> None:
    """ConsumerSpec.before_batch: the vocabulary rows of every product the batch indexes, locked up front in one
    order, so two workers' batches queue instead of deadlocking on shared words."""
    await service.lock_vocabulary_of(session, [e for e in events if isinstance(e, ProductSnapshot)])


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    engine = resources.extras.get("search_engine") or search_engine(resources.settings)
    # A stock change carries the variant's totals after it: of a burst, only the newest is written.
    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers=handlers(engine, resources.redis),
                         latest_only={StockChanged: "variant_id"}, before_batch=lock_batch_vocabulary)]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    async def drain() -> None:
        async with unit_of_work(resources.session_factory) as session:
            await drain_query_log(session, resources.redis)

    return [PeriodicTask(name="search-query-log", interval_seconds=QUERY_LOG_DRAIN_SECONDS, run=drain)]
