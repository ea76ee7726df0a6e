"""What the cart domain runs in the worker process: the `cart-projections` group (inbox in schema `cart`),
which keeps this domain's own copy of other domains' facts in Redis (repository.py lists the keys):

    product.created / product.updated  -> each variant's {product_id, name, sku, price, currency};
                                          variants missing from an update are marked gone
    product.deleted                    -> the product's variants are marked gone, for good
    inventory.stock_changed            -> available units per variant
    order.placed                       -> the ordered quantities leave the cart it was placed from, and so
                                          does the coupon the order redeemed (`coupon_code`)

The inbox row commits in Postgres, separately from these Redis writes: if that commit fails after Redis was
written, the event is delivered again. Every handler is therefore idempotent by itself: projections store
snapshots (an older product snapshot, by updated_at, is ignored), and order.placed records the order id in
the cart inside the same Lua script that takes the quantities out, so a second delivery changes nothing.
"""
from __future__ import annotations

import time
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from kernel.money import format_money
from subgraphs.cart import repository
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated
from subgraphs.inventory.events import StockChanged
from subgraphs.orders.events import OrderPlaced

CONSUMER_GROUP = "cart-projections"


def _version(updated_at: datetime) -> int:
    """updated_at as integer microseconds (ordering snapshots)."""
    return int(updated_at.timestamp()) * 1_000_000 + updated_at.microsecond


async def project_product(redis: Redis, product: ProductSnapshot) -> None:
    """Apply a product.created / product.updated snapshot."""
    variants = [(v.variant_id, v.sku, format_money(v.price), v.currency) for v in product.variants]
    await repository.put_product(redis, product_id=product.product_id, version=_version(product.updated_at),
                                 name=product.name, variants=variants)


async def project_product_deleted(redis: Redis, product: ProductDeleted) -> None:
    await repository.mark_product_deleted(redis, product_id=product.product_id, variant_ids=product.variant_ids)


async def project_stock(redis: Redis, stock: StockChanged) -> None:
    """Apply inventory.stock_changed (totals after the change)."""
    await repository.put_stock(redis, variant_id=stock.variant_id, available=stock.available)


async def take_ordered_items(redis: Redis, order: OrderPlaced, *, ttl_seconds: int) -> bool:
    """Apply order.placed: remove the ordered quantities from the cart (lines reaching 0 are dropped).
    False when there was nothing to do (no cart id, cart gone, or this order was already applied)."""
    if not order.cart_id:
        return False
    return await repository.take_ordered(redis, cart_id=order.cart_id, order_id=str(order.order_id),
                                         items=[(i.variant_id, i.quantity) for i in order.items],
                                         now_ms=int(time.time() * 1000), ttl=ttl_seconds,
                                         coupon_code=order.coupon_code)


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    redis = resources.redis
    ttl_seconds = resources.settings.cart_ttl_seconds

    # The session only carries the inbox row: every effect of these events lives in Redis.
    async def on_product(_session: AsyncSession, product: ProductSnapshot) -> None:
        await project_product(redis, product)

    async def on_product_deleted(_session: AsyncSession, product: ProductDeleted) -> None:
        await project_product_deleted(redis, product)

    async def on_stock_changed(_session: AsyncSession, stock: StockChanged) -> None:
        await project_stock(redis, stock)

    async def on_order_placed(_session: AsyncSession, order: OrderPlaced) -> None:
        await take_ordered_items(redis, order, ttl_seconds=ttl_seconds)

    return [ConsumerSpec(name=CONSUMER_GROUP, schema="cart", handlers={
        ProductCreated: on_product, ProductUpdated: on_product, ProductDeleted: on_product_deleted,
        StockChanged: on_stock_changed, OrderPlaced: on_order_placed}, prompt=True,
        latest_only={StockChanged: "variant_id"})]  # totals after the change: of a burst, the newest is enough


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return []
