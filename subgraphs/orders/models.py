"""Records of the orders domain (schema `orders`, see migrations/0001_orders.sql).

The statements here are multi-table CTEs (order + items + history + saga in one round trip), which read
better as SQL than as ORM objects, so repository.py speaks SQL and maps rows to these frozen records.
"""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

SCHEMA = "orders"


class OrderStatus(str, enum.Enum):
    PENDING = "PENDING"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


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
    shipping_address: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    coupon_code: str | None = None  # the code whose discount the order carries (upper-case)


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
