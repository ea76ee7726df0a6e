"""Errors of the payments domain.

Payments has no mutations: its failures happen in event handlers, where an exception means "retry,
then park the event on the DLQ for an operator". They are therefore plain `AppError`s (an internal error
if one ever reached GraphQL), named so the DLQ entry says what went wrong.
"""
from __future__ import annotations

from kernel.errors import AppError


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
