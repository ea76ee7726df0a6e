"""Events of the inventory domain (payloads: docs/commerce-spine.md; ids are strings).

Emitted via the outbox, in service.py, in the same transaction as the change:
  inventory.reserved         key order_id    {order_id, items: [{variant_id, warehouse_id, quantity}]}
  inventory.out_of_stock     key order_id    {order_id, variant_ids: [...]}            (nothing was reserved)
  inventory.committed        key order_id    {order_id, items: [{variant_id, warehouse_id, quantity}]}
  inventory.released         key order_id    {order_id, items: [{variant_id, warehouse_id, quantity}]}
                                             (items: released reservations and restocked committed ones)
  inventory.flash_sale_held  key sale_id     {sale_id, variant_id, quantity, held}    (held: all units or none)
  inventory.stock_changed    key variant_id  {variant_id, on_hand, reserved, available, in_stock}  (totals)
  inventory.low_stock        key variant_id  {variant_id, available, threshold}   (once per downward crossing)

Consumed by the `inventory` consumer group (inbox in schema `inventory`), see `consumer_specs`:
  product.created / product.updated  -> register the variants, zero stock rows in every warehouse
  order.placed                       -> reserve all lines or none -> inventory.reserved | inventory.out_of_stock
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

from kernel.consumer import ConsumerSpec, EventHandler, WorkerResources
from kernel.db import after_commit
from kernel.events import EventEnvelope
from subgraphs.inventory import cache, service
from subgraphs.inventory.models import SCHEMA

log = logging.getLogger("nexuscart.inventory.events")

EMITTED = ("inventory.reserved", "inventory.out_of_stock", "inventory.committed", "inventory.released",
           "inventory.flash_sale_held", "inventory.stock_changed", "inventory.low_stock")
CONSUMED = ("product.created", "product.updated", "order.placed", "order.paid", "order.cancelled",
            "flashsale.scheduled", "flashsale.ended")
CONSUMER_GROUP = "inventory"


def _id(value: Any, what: str) -> int:
    try:
        parsed = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not an id") from None
    if parsed <= 0:
        raise ValueError(f"{what} {value!r} is not an id")
    return parsed


async def on_product_changed(session: AsyncSession, payload: dict[str, Any]) -> bool:
    product_id = _id(payload["product_id"], "product_id")
    variants = [(product_id, _id(v["variant_id"], "variant_id")) for v in payload.get("variants") or []]
    # Stock stays zero, but a new variant changes the answer of `variant(id)` (null -> the variant), which
    # the response cache may hold as null: report it so the handler drops the cached answers.
    return await service.register_variants(session, variants)


async def on_order_placed(session: AsyncSession, payload: dict[str, Any]) -> bool:
    order_id = _id(payload["order_id"], "order_id")
    if payload.get("flash_sale_id") is not None:
        # The sale's hold already set these units aside; reserving again would count them twice. Nothing is
        # recorded, so the order's paid / cancelled events find no reservation either.
        sale_id = _id(payload["flash_sale_id"], "flash_sale_id")
        log.info("order.placed of a flash sale: covered by the sale's hold",
                 extra={"order_id": order_id, "sale_id": sale_id})
        return False
    items = [(_id(i["variant_id"], "variant_id"), i["quantity"]) for i in payload["items"]]
    result = await service.reserve_for_order(session, order_id, items)
    return result.reserved and not result.duplicate


async def on_order_paid(session: AsyncSession, payload: dict[str, Any]) -> bool:
    order_id = _id(payload["order_id"], "order_id")
    committed = await service.commit_order(session, order_id)
    if not committed:
        log.info("order.paid with nothing reserved to commit", extra={"order_id": order_id})
    return bool(committed)


async def on_order_cancelled(session: AsyncSession, payload: dict[str, Any]) -> bool:
    return bool(await service.release_order(session, _id(payload["order_id"], "order_id")))


async def on_flash_sale_scheduled(session: AsyncSession, payload: dict[str, Any]) -> bool:
    hold = await service.hold_for_flash_sale(session, _id(payload["sale_id"], "sale_id"),
                                             _id(payload["variant_id"], "variant_id"), payload["quantity"])
    return hold.held and not hold.duplicate


async def on_flash_sale_ended(session: AsyncSession, payload: dict[str, Any]) -> bool:
    settlement = await service.settle_flash_sale(session, _id(payload["sale_id"], "sale_id"), payload["sold"])
    return settlement.changed


HANDLERS: dict[str, Callable[[AsyncSession, dict[str, Any]], Awaitable[bool]]] = {
    "product.created": on_product_changed,
    "product.updated": on_product_changed,
    "order.placed": on_order_placed,
    "order.paid": on_order_paid,
    "order.cancelled": on_order_cancelled,
    "flashsale.scheduled": on_flash_sale_scheduled,
    "flashsale.ended": on_flash_sale_ended,
}


def make_handler(redis: Any = None) -> EventHandler:
    """The dispatching handler; runs inside the consumer's inbox transaction. With `redis`, a handled event
    that changed stock drops the subgraph's cached stock answers once the transaction has committed."""

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        handler = HANDLERS.get(envelope.event_type)
        if handler is None:  # a topic this group does not subscribe to: nothing to do, not a failure
            log.warning("inventory ignores event type", extra={"event_type": envelope.event_type})
            return
        if await handler(session, envelope.payload) and redis is not None:
            after_commit(session, lambda: cache.invalidate(redis))

    return handle


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, topics=CONSUMED, handler=make_handler(resources.redis))]
