"""Events of the cart domain.

Emitted via the outbox (service.add_to_cart), keyed by the cart id:
    cart.item_added {cart_id, user_id (null for guests), variant_id, quantity (units added)}

Consumed by the `cart-projections` group (inbox in schema `cart`), to keep this domain's own copy of other
domains' facts in Redis (repository.py lists the keys):
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
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, WorkerResources
from kernel.events import EventEnvelope
from subgraphs.cart import repository

EMITTED = ("cart.item_added",)
CONSUMED = ("product.created", "product.updated", "product.deleted", "inventory.stock_changed", "order.placed")
CONSUMER_GROUP = "cart-projections"


def _version(updated_at: Any) -> int | None:
    """updated_at as integer microseconds (ordering snapshots); None when the payload has none."""
    if not updated_at:
        return None
    moment = datetime.fromisoformat(str(updated_at))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


async def project_product(redis: Redis, payload: dict[str, Any]) -> None:
    """Apply a product.created / product.updated snapshot (catalog's `snapshot()` shape)."""
    variants = [(int(v["variant_id"]), str(v["sku"]), str(v["price"]), str(v.get("currency") or payload["currency"]))
                for v in payload.get("variants", [])]
    await repository.put_product(redis, product_id=int(payload["product_id"]),
                                 version=_version(payload.get("updated_at")), name=str(payload["name"]),
                                 variants=variants)


async def project_product_deleted(redis: Redis, payload: dict[str, Any]) -> None:
    await repository.mark_product_deleted(redis, product_id=int(payload["product_id"]),
                                          variant_ids=[int(v) for v in payload.get("variant_ids", [])])


async def project_stock(redis: Redis, payload: dict[str, Any]) -> None:
    """Apply inventory.stock_changed: {variant_id, available, ...} (totals after the change)."""
    await repository.put_stock(redis, variant_id=int(payload["variant_id"]), available=int(payload["available"]))


async def take_ordered_items(redis: Redis, payload: dict[str, Any], *, ttl_seconds: int) -> bool:
    """Apply order.placed: remove the ordered quantities from the cart (lines reaching 0 are dropped).
    False when there was nothing to do (no cart id, cart gone, or this order was already applied)."""
    cart_id = payload.get("cart_id")
    if not cart_id:
        return False
    items = [(int(i["variant_id"]), int(i["quantity"])) for i in payload.get("items", [])]
    return await repository.take_ordered(redis, cart_id=str(cart_id), order_id=str(payload["order_id"]),
                                         items=items, now_ms=int(time.time() * 1000), ttl=ttl_seconds,
                                         coupon_code=payload.get("coupon_code"))


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    redis = resources.redis
    ttl_seconds = resources.settings.cart_ttl_seconds

    async def handle(_session: AsyncSession, envelope: EventEnvelope) -> None:
        # The session only carries the inbox row: every effect of these events lives in Redis.
        payload = envelope.payload
        if envelope.event_type in ("product.created", "product.updated"):
            await project_product(redis, payload)
        elif envelope.event_type == "product.deleted":
            await project_product_deleted(redis, payload)
        elif envelope.event_type == "inventory.stock_changed":
            await project_stock(redis, payload)
        elif envelope.event_type == "order.placed":
            await take_ordered_items(redis, payload, ttl_seconds=ttl_seconds)

    return [ConsumerSpec(name=CONSUMER_GROUP, schema="cart", topics=CONSUMED, handler=handle)]
