"""The events the promotions domain emits (docs/flash-sales.md). A contract only: consumers.py runs what
promotions consumes and the flash-sale reconciler.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

from kernel.events import EventPayload, Id, Money


@dataclasses.dataclass(frozen=True, slots=True)
class FlashSaleScheduled(EventPayload, topic="flashsale.scheduled"):
    """Keyed by sale id: inventory holds `quantity` units of the variant (all or none)."""
    sale_id: Id
    variant_id: Id
    quantity: int
    starts_at: datetime
    ends_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class FlashSalePurchased(EventPayload, topic="flashsale.purchased"):
    """Keyed by reservation id: a unit reservation whose order orders must create (the reconciler's path; the
    purchase request posts the same body to orders' /internal/flash-sale-orders). The order id is the
    reservation id."""
    reservation_id: Id
    sale_id: Id
    user_id: Id
    variant_id: Id
    product_id: Id
    sku: str
    name: str
    quantity: int
    unit_price: Money
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class FlashSaleEnded(EventPayload, topic="flashsale.ended"):
    """Keyed by sale id, once every reserved unit is paid or returned: inventory ships `sold` units from the
    hold and returns the rest to general stock."""
    sale_id: Id
    variant_id: Id
    sold: int
    total_stock: int
