"""Events the orders domain emits (payloads exactly as docs/commerce-spine.md lists them) and, through
saga.py, the handlers it runs for the events it consumes.

The worker process (workers/runtime.py) looks for `consumer_specs` and `periodic_tasks` here.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from subgraphs.orders.models import OrderItemRecord, OrderRecord, OrderStatus

ORDER_PLACED = "order.placed"
ORDER_CONFIRMED = "order.confirmed"
ORDER_PAID = "order.paid"
ORDER_CANCELLED = "order.cancelled"
ORDER_REFUNDED = "order.refunded"
ORDER_SHIPPED = "order.shipped"
ORDER_DELIVERED = "order.delivered"

# The event every transition into a status emits (order.placed is emitted at creation).
EVENT_FOR_STATUS: dict[OrderStatus, str] = {
    OrderStatus.AWAITING_PAYMENT: ORDER_CONFIRMED,
    OrderStatus.PAID: ORDER_PAID,
    OrderStatus.CANCELLED: ORDER_CANCELLED,
    OrderStatus.REFUNDED: ORDER_REFUNDED,
    OrderStatus.SHIPPED: ORDER_SHIPPED,
    OrderStatus.DELIVERED: ORDER_DELIVERED,
}

# What the saga consumes.
INVENTORY_RESERVED = "inventory.reserved"
INVENTORY_OUT_OF_STOCK = "inventory.out_of_stock"
PAYMENT_SUCCESSFUL = "payment.successful"
PAYMENT_FAILED = "payment.failed"
PAYMENT_REFUNDED = "payment.refunded"
FLASH_SALE_PURCHASED = "flashsale.purchased"
SAGA_TOPICS = (INVENTORY_RESERVED, INVENTORY_OUT_OF_STOCK, PAYMENT_SUCCESSFUL, PAYMENT_FAILED, PAYMENT_REFUNDED)


def money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"


def iso(at: datetime) -> str:
    return at.isoformat()


def order_placed(order: OrderRecord, items: Sequence[OrderItemRecord]) -> dict[str, Any]:
    return {
        "order_id": str(order.id), "user_id": str(order.user_id), "number": order.number, "cart_id": order.cart_id,
        "items": [{"variant_id": str(i.variant_id), "product_id": str(i.product_id), "sku": i.sku, "name": i.name,
                   "quantity": i.quantity, "unit_price": money(i.unit_price)} for i in items],
        "subtotal": money(order.subtotal), "discount": money(order.discount), "total": money(order.total),
        "currency": order.currency, "placed_at": iso(order.created_at), "coupon_code": order.coupon_code,
    }


def transition_payload(to_status: OrderStatus, *, order_id: int, user_id: int, from_status: OrderStatus,
                       reason: str | None, total: Decimal, currency: str, payment_provider: str | None,
                       payment_token: str | None, items: list[dict[str, Any]]) -> dict[str, Any]:
    base = {"order_id": str(order_id), "user_id": str(user_id)}
    if to_status is OrderStatus.AWAITING_PAYMENT:
        return {**base, "amount": money(total), "currency": currency,
                "payment": {"provider": payment_provider, "token": payment_token}}
    if to_status is OrderStatus.PAID:
        return {**base, "items": items}
    if to_status is OrderStatus.CANCELLED:
        return {**base, "reason": reason, "previous_status": from_status.value, "items": items}
    return base  # refunded, shipped, delivered


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    from subgraphs.orders import saga  # saga imports the service, which imports this module
    return saga.consumer_specs(resources)


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    from subgraphs.orders import saga
    return saga.periodic_tasks(resources)
