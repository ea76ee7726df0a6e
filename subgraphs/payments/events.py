"""The events the payments domain emits, keyed by order id so one order's events stay ordered
(docs/commerce-spine.md). A contract only: consumers.py runs what payments consumes.
"""
from __future__ import annotations

import dataclasses

from kernel.events import EventPayload, Id, Money


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentSuccessful(EventPayload, topic="payment.successful"):
    order_id: Id
    payment_id: Id
    amount: Money
    currency: str
    provider: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentFailed(EventPayload, topic="payment.failed"):
    order_id: Id
    payment_id: Id
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentRefunded(EventPayload, topic="payment.refunded"):
    """One refund succeeded: `amount` is this refund, `refunded_total` all refunds of the payment so far, and
    `fully_refunded` whether nothing captured is left (events written before partial refunds lack both: they
    were always full refunds)."""
    order_id: Id
    payment_id: Id
    amount: Money
    currency: str
    refunded_total: Money | None = None
    fully_refunded: bool = True
