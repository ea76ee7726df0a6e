"""The events the orders domain emits: each topic's payload, exactly as docs/commerce-spine.md lists it.

A contract only (consumers.py runs what orders consumes): other domains import these types to read the events.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

from kernel.events import EventPayload, Id, Money, omitted_when_none


@dataclasses.dataclass(frozen=True, slots=True)
class PlacedItem:
    variant_id: Id
    product_id: Id
    sku: str
    name: str
    quantity: int
    unit_price: Money
    item_id: Id | None = omitted_when_none()  # the order line's id (absent from events written before shipping)


@dataclasses.dataclass(frozen=True, slots=True)
class OrderPlaced(EventPayload, topic="order.placed"):
    order_id: Id
    user_id: Id
    number: str
    cart_id: str | None  # null for an order not placed from a cart (a flash sale's)
    items: list[PlacedItem]
    subtotal: Money
    discount: Money
    total: Money
    currency: str
    placed_at: datetime
    coupon_code: str | None = None  # null without a coupon (absent from events written before coupons)
    # Only for an order of a flash sale (created AWAITING_PAYMENT, its stock held by the sale):
    flash_sale_id: Id | None = omitted_when_none()
    reservation_id: Id | None = omitted_when_none()
    status: str | None = omitted_when_none()
    # Shipping (subgraphs/shipping): included in `total`; absent when no shipping zone matched (shipping 0).
    shipping_total: Money | None = omitted_when_none()
    shipping_method_id: Id | None = omitted_when_none()
    # Set on a re-sent copy (the saga watchdog's, or placeOrder's when its reservation call got no answer):
    # inventory then announces what it decided, even if it had decided already (by that call).
    reasked: bool | None = omitted_when_none()


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentMethod:
    provider: str
    token: str


@dataclasses.dataclass(frozen=True, slots=True)
class OrderConfirmed(EventPayload, topic="order.confirmed"):
    """Stock is reserved (or held by a flash sale): charge now."""
    order_id: Id
    user_id: Id
    amount: Money
    currency: str
    payment: PaymentMethod


@dataclasses.dataclass(frozen=True, slots=True)
class OrderLine:
    variant_id: Id
    quantity: int


@dataclasses.dataclass(frozen=True, slots=True)
class OrderPaid(EventPayload, topic="order.paid"):
    order_id: Id
    user_id: Id
    items: list[OrderLine]


@dataclasses.dataclass(frozen=True, slots=True)
class OrderCancelled(EventPayload, topic="order.cancelled"):
    order_id: Id
    user_id: Id
    reason: str            # OUT_OF_STOCK | PAYMENT_DECLINED | PAYMENT_TIMEOUT | CUSTOMER_CANCELLED
    previous_status: str
    items: list[OrderLine]


@dataclasses.dataclass(frozen=True, slots=True)
class OrderRefunded(EventPayload, topic="order.refunded"):
    order_id: Id
    user_id: Id


@dataclasses.dataclass(frozen=True, slots=True)
class OrderPartiallyRefunded(EventPayload, topic="order.partially_refunded"):
    order_id: Id
    user_id: Id


@dataclasses.dataclass(frozen=True, slots=True)
class OrderShipped(EventPayload, topic="order.shipped"):
    order_id: Id
    user_id: Id
    # The first shipment's (shipment.created); absent when an ADMIN used the deprecated markOrderShipped.
    shipment_id: Id | None = omitted_when_none()
    carrier: str | None = omitted_when_none()
    tracking_number: str | None = omitted_when_none()
    tracking_url: str | None = omitted_when_none()


@dataclasses.dataclass(frozen=True, slots=True)
class OrderDelivered(EventPayload, topic="order.delivered"):
    order_id: Id
    user_id: Id
