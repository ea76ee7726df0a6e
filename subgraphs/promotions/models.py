"""Tables and records of the promotions domain (schema `promotions`; the DDL is migrations/*.sql). The statements
are in repository.py (flash sales) and coupon_repository.py (coupons), one module per aggregate."""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CHAR, BigInteger, Column, DateTime, Integer, MetaData, Numeric, Table, Text

SCHEMA = "promotions"
metadata = MetaData(schema=SCHEMA)

flash_sales = Table(
    "flash_sales", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("variant_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("sku", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("regular_price", Numeric(14, 2), nullable=False),
    Column("sale_price", Numeric(14, 2), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("total_stock", Integer, nullable=False),
    Column("per_user_limit", Integer, nullable=False),
    Column("stock_status", Text, nullable=False),
    Column("sold_units", Integer),
    Column("settled_at", DateTime(timezone=True)),
    Column("created_by", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

coupons = Table(
    "coupons", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("code", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("value", Numeric(14, 2), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("min_subtotal", Numeric(14, 2), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),
    Column("usage_limit", Integer),
    Column("per_user_limit", Integer),
    Column("times_redeemed", Integer, nullable=False),
    Column("created_by", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

coupon_redemptions = Table(
    "coupon_redemptions", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("coupon_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("order_id", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("subtotal", Numeric(14, 2), nullable=False),
    Column("discount", Numeric(14, 2), nullable=False),
    Column("redeemed_at", DateTime(timezone=True), nullable=False),
    Column("released_at", DateTime(timezone=True)),
)


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
