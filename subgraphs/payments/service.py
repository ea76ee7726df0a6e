"""Business rules of payments: charge a confirmed order once, refund or cancel a cancelled one.

Functions take the session first and only flush; the caller (the event consumer) owns the transaction,
so the row change, the provider-call audit and the outbox event commit together with the inbox entry.

Provider calls happen inside that transaction, which is safe only because of idempotency keys derived
from the order (`order:<id>:charge`, ...): if the commit fails after the provider acted, the redelivered
event asks again with the same key and gets the same answer, never a second charge.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.ids import next_id
from kernel.outbox import add_event
from subgraphs.payments import repository
from subgraphs.payments.errors import CancelNotCompleted, RefundNotCompleted
from subgraphs.payments.events import PaymentFailed, PaymentRefunded, PaymentSuccessful
from subgraphs.payments.models import SCHEMA, PaymentRow, PaymentStatus
from subgraphs.payments.providers import PaymentProvider, ProviderResult, ProviderStatus

UNSUPPORTED_PROVIDER = "unsupported_provider"


def charge_key(order_id: int) -> str:
    return f"order:{order_id}:charge"


def refund_key(order_id: int) -> str:
    return f"order:{order_id}:refund"


def cancel_key(order_id: int) -> str:
    return f"order:{order_id}:cancel"


async def _audit(session: AsyncSession, payment: PaymentRow, operation: str, key: str,
                 result: ProviderResult) -> None:
    await repository.record_provider_call(session, {
        "idempotency_key": key, "payment_id": payment.id, "provider": payment.provider, "operation": operation,
        "outcome": result.status.value, "provider_reference": result.reference,
        "failure_reason": result.failure_reason})


async def charge_order(session: AsyncSession, providers: Mapping[str, PaymentProvider], *, order_id: int,
                       user_id: int, amount: Decimal, currency: str, provider: str,
                       token: str) -> PaymentRow | None:
    """Charge a confirmed order. Returns the payment, or None when the order already had a row (charged
    before, or cancelled before its confirmation arrived): nothing is charged then, nothing is emitted."""
    payment = await repository.insert_payment_if_absent(session, {
        "id": next_id(), "order_id": order_id, "user_id": user_id, "amount": amount, "currency": currency,
        "provider": provider, "status": PaymentStatus.PENDING.value})
    if payment is None:
        return None

    gateway = providers.get(provider)
    if gateway is None:
        # Orders validates the provider at checkout; this only happens when the deployment's provider list
        # changed in between. Failing the payment lets the saga cancel the order instead of hanging it.
        return await _settle_charge(session, payment, ProviderResult(ProviderStatus.FAILED, None,
                                                                     UNSUPPORTED_PROVIDER))

    key = charge_key(order_id)
    # Every parameter must be the same on a retry (a provider refuses a key reused with other parameters),
    # so metadata holds only facts of the event: not the payment id, which a rolled-back attempt drew anew.
    result = await gateway.charge(idempotency_key=key, amount=amount, currency=currency, token=token,
                                  metadata={"order_id": str(order_id), "user_id": str(user_id)})
    await _audit(session, payment, "charge", key, result)
    return await _settle_charge(session, payment, result)


async def _settle_charge(session: AsyncSession, payment: PaymentRow, result: ProviderResult) -> PaymentRow:
    status = {ProviderStatus.SUCCEEDED: PaymentStatus.SUCCEEDED, ProviderStatus.FAILED: PaymentStatus.FAILED,
              ProviderStatus.PROCESSING: PaymentStatus.PROCESSING}[result.status]
    payment = await repository.update_payment(session, payment.id, {
        "status": status.value, "provider_reference": result.reference, "failure_reason": result.failure_reason})
    if status is PaymentStatus.SUCCEEDED:
        # A charged payment, not a tombstone: charge_order wrote all three.
        assert payment.amount is not None and payment.currency is not None and payment.provider is not None
        await add_event(session, SCHEMA, PaymentSuccessful(
            order_id=payment.order_id, payment_id=payment.id, amount=payment.amount, currency=payment.currency,
            provider=payment.provider), key=payment.order_id)
    elif status is PaymentStatus.FAILED:
        await add_event(session, SCHEMA, PaymentFailed(order_id=payment.order_id, payment_id=payment.id,
                                                       reason=result.failure_reason or "unknown"), key=payment.order_id)
    # PROCESSING: no event on purpose; the order stays AWAITING_PAYMENT until the saga's timeout
    # cancels it, and that order.cancelled cancels the intent here.
    await session.flush()
    return payment


async def cancel_order_payment(session: AsyncSession, providers: Mapping[str, PaymentProvider], *,
                               order_id: int, user_id: int) -> PaymentRow:
    """Undo whatever payments did for a cancelled order: refund a captured payment, cancel an open intent,
    or leave a CANCELLED tombstone so a late order.confirmed charges nothing."""
    tombstone = await repository.insert_payment_if_absent(session, {
        "id": next_id(), "order_id": order_id, "user_id": user_id, "status": PaymentStatus.CANCELLED.value})
    if tombstone is not None:
        await session.flush()
        return tombstone

    # Locked so a concurrent handler for the same order waits for this decision.
    payment = await repository.get_payment_by_order_for_update(session, order_id)
    assert payment is not None  # the insert conflicted on order_id, and payments are never deleted
    status = PaymentStatus(payment.status)
    if status is PaymentStatus.SUCCEEDED:
        payment = await _refund(session, providers, payment)
    elif status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING):
        payment = await _cancel_intent(session, providers, payment)
    # FAILED (declined: nothing captured), CANCELLED, REFUNDED: nothing left to undo.
    await session.flush()
    return payment


def _gateway(providers: Mapping[str, PaymentProvider], payment: PaymentRow) -> PaymentProvider:
    gateway = providers.get(payment.provider or "")
    if gateway is None:
        # Money sits with a provider this deployment no longer runs: an operator must act (DLQ).
        raise RuntimeError(f"payment {payment.id} was made with provider {payment.provider!r}, "
                           f"which is not configured")
    return gateway


async def _refund(session: AsyncSession, providers: Mapping[str, PaymentProvider],
                  payment: PaymentRow) -> PaymentRow:
    key = refund_key(payment.order_id)
    amount, currency, reference = payment.amount, payment.currency, payment.provider_reference
    assert amount is not None and currency is not None and reference is not None  # a captured payment
    result = await _gateway(providers, payment).refund(idempotency_key=key, reference=reference, amount=amount)
    await _audit(session, payment, "refund", key, result)
    if result.status is not ProviderStatus.SUCCEEDED:
        raise RefundNotCompleted(payment.order_id, result.status.value, result.failure_reason)
    payment = await repository.update_payment(session, payment.id, {"status": PaymentStatus.REFUNDED.value})
    await add_event(session, SCHEMA, PaymentRefunded(order_id=payment.order_id, payment_id=payment.id,
                                                     amount=amount, currency=currency),
                    key=payment.order_id)
    return payment


async def _cancel_intent(session: AsyncSession, providers: Mapping[str, PaymentProvider],
                         payment: PaymentRow) -> PaymentRow:
    if payment.provider_reference is not None:
        key = cancel_key(payment.order_id)
        result = await _gateway(providers, payment).cancel(idempotency_key=key,
                                                           reference=payment.provider_reference)
        await _audit(session, payment, "cancel", key, result)
        if result.status is not ProviderStatus.SUCCEEDED:
            raise CancelNotCompleted(payment.order_id, result.status.value, result.failure_reason)
    # No reference: the provider never created an intent, there is nothing to cancel there.
    return await repository.update_payment(session, payment.id, {"status": PaymentStatus.CANCELLED.value})


async def payments_by_order_ids(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, PaymentRow]:
    """Payments of these orders by order id; tombstones are left out (no payment was ever attempted)."""
    rows = await repository.payments_by_order_ids(session, order_ids)
    return {r.order_id: r for r in rows if not r.is_tombstone}
