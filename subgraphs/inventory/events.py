"""The events the inventory domain emits: each topic's payload, as docs/commerce-spine.md lists it.

A contract only (consumers.py runs what inventory consumes). Reservation outcomes are keyed by order id, a
flash sale's hold by sale id, stock levels by variant id.
"""
from __future__ import annotations

import dataclasses

from kernel.events import EventPayload, Id


@dataclasses.dataclass(frozen=True, slots=True)
class StockLine:
    """Units of one variant in one warehouse."""
    variant_id: Id
    warehouse_id: Id
    quantity: int


@dataclasses.dataclass(frozen=True, slots=True)
class InventoryReserved(EventPayload, topic="inventory.reserved"):
    """Every line of the order is reserved."""
    order_id: Id
    items: list[StockLine]


@dataclasses.dataclass(frozen=True, slots=True)
class InventoryOutOfStock(EventPayload, topic="inventory.out_of_stock"):
    """Nothing was reserved: these variants could not be covered."""
    order_id: Id
    variant_ids: list[Id]


@dataclasses.dataclass(frozen=True, slots=True)
class InventoryCommitted(EventPayload, topic="inventory.committed"):
    """The paid order's reserved units left stock."""
    order_id: Id
    items: list[StockLine]


@dataclasses.dataclass(frozen=True, slots=True)
class InventoryReleased(EventPayload, topic="inventory.released"):
    """The cancelled order's units are back: released reservations and restocked committed ones."""
    order_id: Id
    items: list[StockLine]


@dataclasses.dataclass(frozen=True, slots=True)
class FlashSaleHeld(EventPayload, topic="inventory.flash_sale_held"):
    """The answer to flashsale.scheduled: all `quantity` units held, or none (`held` false)."""
    sale_id: Id
    variant_id: Id
    quantity: int
    held: bool


@dataclasses.dataclass(frozen=True, slots=True)
class StockChanged(EventPayload, topic="inventory.stock_changed"):
    """A variant's totals over all warehouses, after a change."""
    variant_id: Id
    on_hand: int
    reserved: int
    available: int
    in_stock: bool


@dataclasses.dataclass(frozen=True, slots=True)
class LowStock(EventPayload, topic="inventory.low_stock"):
    """Available units dropped below the variant's threshold (once per downward crossing)."""
    variant_id: Id
    available: int
    threshold: int
