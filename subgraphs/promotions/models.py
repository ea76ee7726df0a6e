"""Records of the promotions domain (its Postgres schema `promotions`; raw SQL in repository.py)."""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal

SCHEMA = "promotions"


class StockStatus(str, enum.Enum):
    PENDING = "PENDING"          # waiting for inventory to set the units aside
    HELD = "HELD"                # set aside in inventory and loaded into Redis
    UNAVAILABLE = "UNAVAILABLE"  # inventory could not set that many units aside: the sale never opens


class FlashSaleStatus(str, enum.Enum):
    """What a shopper sees (derived, never stored)."""
    PREPARING = "PREPARING"      # stock not confirmed by inventory yet
    UNAVAILABLE = "UNAVAILABLE"  # inventory could not cover the stock
    SCHEDULED = "SCHEDULED"      # ready, before the start
    ACTIVE = "ACTIVE"            # in its window, units left
    SOLD_OUT = "SOLD_OUT"        # in its window, nothing left
    ENDED = "ENDED"


@dataclasses.dataclass(frozen=True, slots=True)
class FlashSaleRecord:
    id: int
    variant_id: int
    product_id: int
    sku: str
    name: str
    currency: str
    regular_price: Decimal
    sale_price: Decimal
    starts_at: datetime
    ends_at: datetime
    total_stock: int
    per_user_limit: int
    stock_status: StockStatus
    sold_units: int | None
    settled_at: datetime | None
    created_at: datetime

    def status_at(self, now: datetime, remaining: int | None) -> FlashSaleStatus:
        if now >= self.ends_at:
            return FlashSaleStatus.ENDED
        if self.stock_status is StockStatus.UNAVAILABLE:
            return FlashSaleStatus.UNAVAILABLE
        if self.stock_status is StockStatus.PENDING:
            return FlashSaleStatus.PREPARING
        if now < self.starts_at:
            return FlashSaleStatus.SCHEDULED
        return FlashSaleStatus.SOLD_OUT if (remaining or 0) <= 0 else FlashSaleStatus.ACTIVE
