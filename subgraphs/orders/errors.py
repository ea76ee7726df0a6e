"""Errors of the orders domain; the kernel maps their codes to GraphQL `extensions.code` (kernel/errors.py)."""
from __future__ import annotations

from kernel.errors import AppError, BadUserInput, Conflict, ErrorCode, Forbidden, NotFound


class OrderNotFound(NotFound):
    def __init__(self, order_id: int | None = None) -> None:
        super().__init__("Order not found", subject=order_id)


class NotYourOrder(Forbidden):
    def __init__(self) -> None:
        super().__init__("Only the customer who placed this order or an admin can do this")


class IllegalTransition(Conflict):
    def __init__(self, order_id: int, current: str, target: str) -> None:
        super().__init__(f"An order in status {current} cannot become {target}", subject=order_id)
        self.current = current
        self.target = target


class IdempotencyKeyReused(Conflict):
    def __init__(self) -> None:
        super().__init__("This idempotencyKey was already used for a different order request",
                         field="idempotencyKey")


class EmptyCart(BadUserInput):
    def __init__(self) -> None:
        super().__init__("The cart is empty", field="cartId")


class UnknownCoupon(BadUserInput):
    def __init__(self, code: str) -> None:
        super().__init__("unknown coupon", field="couponCode", subject=code)


__all__ = [
    "AppError",
    "EmptyCart",
    "ErrorCode",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "NotYourOrder",
    "OrderNotFound",
    "UnknownCoupon",
]


class PaymentAlreadySubmitted(Conflict):
    def __init__(self, order_id: int) -> None:
        super().__init__("This order is not awaiting a payment method (already submitted, paid or cancelled)",
                         subject=order_id)
