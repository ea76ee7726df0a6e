"""Tables and records of the orders domain (schema `orders`; the DDL is migrations/*.sql).

The tables are SQLAlchemy Core tables for repository.py's statements; what the repository returns are the frozen
records below. The write paths are multi-table CTEs (order + items + history + saga in one round trip), which
read better as SQL, so those few statements are text() over these same tables (see repository.py).
"""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CHAR, BigInteger, Column, DateTime, Integer, LargeBinary, MetaData, Numeric, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "orders"
metadata = MetaData(schema=SCHEMA)

# Hash-partitioned by user_id; the primary key is (user_id, id).
orders = Table(
    "orders", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("number", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_seq", Integer, nullable=False),
    Column("cancellation_reason", Text),
    Column("cart_id", Text),
    Column("idempotency_key", Text, nullable=False),
    Column("request_fingerprint", LargeBinary, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("subtotal", Numeric(14, 2), nullable=False),
    Column("discount", Numeric(14, 2), nullable=False),
    Column("total", Numeric(14, 2), nullable=False),
    Column("shipping_address", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("flash_sale_id", BigInteger),
    Column("coupon_code", Text),
    Column("shipping_total", Numeric(14, 2), nullable=False),
    Column("shipping_method_id", BigInteger),
)

order_items = Table(
    "order_items", metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("id", BigInteger, primary_key=True),
    Column("variant_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("sku", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(14, 2), nullable=False),
    Column("line_total", Numeric(14, 2), nullable=False),
)

order_status_history = Table(
    "order_status_history", metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("from_status", Text),
    Column("to_status", Text, nullable=False),
    Column("reason", Text),
    Column("at", DateTime(timezone=True), nullable=False),
)

order_sagas = Table(
    "order_sagas", metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("step", Text, nullable=False),
    Column("payment_provider", Text),
    Column("payment_token", Text),
    Column("payment_deadline", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class OrderStatus(str, enum.Enum):
    PENDING = "PENDING"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"  # part of the captured payment was refunded (refundPayment)


class CancellationReason(str, enum.Enum):
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    PAYMENT_TIMEOUT = "PAYMENT_TIMEOUT"
    CUSTOMER_CANCELLED = "CUSTOMER_CANCELLED"


@dataclasses.dataclass(frozen=True, slots=True)
class OrderRecord:
    id: int
    user_id: int
    number: str
    status: OrderStatus
    status_seq: int
    cancellation_reason: str | None
    cart_id: str | None
    idempotency_key: str
    request_fingerprint: bytes
    currency: str
    subtotal: Decimal
    discount: Decimal
    total: Decimal
    shipping_address: dict[str, Any] | None  # None until payOrder attaches one to a flash-sale order
    created_at: datetime
    updated_at: datetime
    coupon_code: str | None = None  # the code whose discount the order carries (upper-case)
    shipping_total: Decimal = Decimal("0.00")  # included in total
    shipping_method_id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OrderItemRecord:
    order_id: int
    id: int
    variant_id: int
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryRecord:
    order_id: int
    seq: int
    from_status: OrderStatus | None
    to_status: OrderStatus
    reason: str | None
    at: datetime
