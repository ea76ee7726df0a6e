"""Errors of the payments domain.

Most of its failures happen in event handlers, where an exception means "retry, then park the event on the
DLQ for an operator": those are plain `AppError`s (an internal error if one ever reached GraphQL), named so
the DLQ entry says what went wrong. The mutations (confirmPayment, refundPayment) raise the coded ones below.
"""
from __future__ import annotations

from kernel.errors import AppError, BadUserInput, Conflict, Forbidden, NotFound


class PaymentError(AppError):
    """Base of the payments domain's failures."""


class RefundNotCompleted(PaymentError):
    """The provider did not confirm a refund of money captured for a cancelled order. Never dropped
    silently: the event is retried with the same idempotency key and then parked on the DLQ."""

    def __init__(self, order_id: int, status: str, reason: str | None) -> None:
        super().__init__(f"refund of order {order_id} is {status} ({reason or 'no reason'})", subject=order_id)


class CancelNotCompleted(PaymentError):
    """The provider refused to cancel an intent that was still open (e.g. it succeeded meanwhile)."""

    def __init__(self, order_id: int, status: str, reason: str | None) -> None:
        super().__init__(f"cancelling the payment of order {order_id} is {status} ({reason or 'no reason'})",
                         subject=order_id)


class PaymentNotFound(NotFound):
    def __init__(self, subject: object) -> None:
        super().__init__("No such payment", subject=subject)


class NotYourPayment(Forbidden):
    def __init__(self) -> None:
        super().__init__("This payment belongs to another user")


class NothingCaptured(Conflict):
    def __init__(self, payment_id: int, status: str) -> None:
        super().__init__(f"The payment is {status}: nothing was captured to refund", subject=payment_id)


class RefundTooLarge(BadUserInput):
    def __init__(self, payment_id: int, rest: str) -> None:
        super().__init__(f"'amount' is more than the {rest} left to refund", field="amount", subject=payment_id)
