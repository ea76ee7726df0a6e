"""Business rules of payments: charge a confirmed order once, settle what the provider decides (its answer, a
webhook, `confirmPayment`, the reconciler), refund in part or in full, undo a cancelled order's payment.

Functions take the session first and only flush; the caller (the event consumer, the GraphQL request, the
webhook route, the reconciler) owns the transaction, so a row change, the provider-call audit and the outbox
event commit together.

Money moves outside Postgres, so two things are committed BEFORE the provider is asked, each in a short
transaction of its own (`session_factory`):
- the payment row, PENDING ("charge pending"), and the provider's intent id as soon as the provider created it
  (before it is confirmed): a crash after the provider's answer and before the commit leaves a row that a
  redelivered event or the reconciler resumes by asking about that intent, never by charging blindly again;
- every refund, PENDING: it counts against what is left to refund until it is settled.
Idempotency keys are derived from the payment (`payment:<id>:charge`) or the refund (`refund:<id>`), which
exist before the call, so every retry of one act sends the same key.

A payment's status only moves forward (`OPEN_STATUSES` -> decided, captured -> refunded): an old webhook, a
late reconciler answer or a replay finds it past that point and changes nothing.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.auth import Principal
from kernel.errors import BadUserInput
from kernel.ids import next_id
from kernel.money import parse_amount
from kernel.outbox import add_event
from kernel.uow import unit_of_work
from subgraphs.payments import repository
from subgraphs.payments.errors import (
    CancelNotCompleted,
    NothingCaptured,
    NotYourPayment,
    PaymentNotFound,
    RefundNotCompleted,
    RefundTooLarge,
)
from subgraphs.payments.events import PaymentFailed, PaymentRefunded, PaymentSuccessful
from subgraphs.payments.models import (
    CAPTURED_STATUSES,
    OPEN_STATUSES,
    SCHEMA,
    PaymentRow,
    PaymentStatus,
    RefundRow,
    RefundStatus,
)
from subgraphs.payments.providers import PaymentProvider, ProviderError, ProviderResult, ProviderStatus

log = logging.getLogger("nexuscart.payments")

UNSUPPORTED_PROVIDER = "unsupported_provider"
MAX_REFUND_REASON = 500
Sessions = async_sessionmaker[AsyncSession]


def charge_key(payment_id: int) -> str:
    return f"payment:{payment_id}:charge"


def cancel_key(payment_id: int) -> str:
    return f"payment:{payment_id}:cancel"


def refund_key(refund_id: int) -> str:
    return f"refund:{refund_id}"


async def _audit(session: AsyncSession, payment: PaymentRow, operation: str, key: str,
                 result: ProviderResult) -> None:
    await repository.record_provider_call(session, {
        "idempotency_key": key, "payment_id": payment.id, "provider": payment.provider, "operation": operation,
        "outcome": result.status.value, "provider_reference": result.reference,
        "failure_reason": result.failure_reason})


def _gateway(providers: Mapping[str, PaymentProvider], payment: PaymentRow) -> PaymentProvider:
    gateway = providers.get(payment.provider or "")
    if gateway is None:
        # Money sits with a provider this deployment no longer runs: an operator must act (DLQ).
        raise RuntimeError(f"payment {payment.id} was made with provider {payment.provider!r}, "
                           f"which is not configured")
    return gateway


# ---- charging ---------------------------------------------------------------------------------------------

async def charge_order(session: AsyncSession, providers: Mapping[str, PaymentProvider], sessions: Sessions, *,
                       order_id: int, user_id: int, amount: Decimal, currency: str, provider: str,
                       token: str) -> PaymentRow | None:
    """Charge a confirmed order. Returns the payment, or None when the order's payment is already past its
    charge (charged before, or cancelled before its confirmation arrived): nothing is charged then, nothing
    emitted. A charge left pending by an earlier attempt (a crash, a rolled-back transaction) is resumed."""
    async with unit_of_work(sessions) as pending:
        # Committed now: from here on the payment exists whatever happens to this transaction.
        await repository.insert_payment_if_absent(pending, {
            "id": next_id(), "order_id": order_id, "user_id": user_id, "amount": amount, "currency": currency,
            "provider": provider, "status": PaymentStatus.PENDING.value, "payment_method": token})
    # Locked until this transaction ends: an order.cancelled, a webhook or the reconciler wait for the answer.
    payment = await repository.get_payment_by_order_for_update(session, order_id)
    if payment is None or payment.status != PaymentStatus.PENDING.value:
        return None
    return await _run_charge(session, providers, sessions, payment)


async def _run_charge(session: AsyncSession, providers: Mapping[str, PaymentProvider], sessions: Sessions,
                      payment: PaymentRow) -> PaymentRow:
    """Ask the provider to charge a locked open payment (or to go on with the intent an earlier attempt
    created) and record its answer."""
    gateway = providers.get(payment.provider or "")
    if gateway is None:
        # Orders validates the provider at checkout; this only happens when the deployment's provider list
        # changed in between. Failing the payment lets the saga cancel the order instead of hanging it.
        return await apply_charge_result(session, payment,
                                         ProviderResult(ProviderStatus.FAILED, None, UNSUPPORTED_PROVIDER))
    assert payment.amount is not None and payment.currency is not None  # an open payment, not a tombstone
    reference = payment.provider_reference or await repository.charge_intent(session, payment.id)
    payment_id = payment.id

    async def record_reference(created: str) -> None:
        async with unit_of_work(sessions) as own:
            await repository.record_charge_intent(own, payment_id, created)

    key = charge_key(payment.id)
    # Every parameter is the same on a retry (a provider refuses a key reused with other parameters).
    result = await gateway.charge(
        idempotency_key=key, amount=payment.amount, currency=payment.currency, token=payment.payment_method or "",
        metadata={"order_id": str(payment.order_id), "payment_id": str(payment.id), "user_id": str(payment.user_id)},
        reference=reference, record_reference=record_reference)
    await _audit(session, payment, "charge", key, result)
    return await apply_charge_result(session, payment, result)


async def apply_charge_result(session: AsyncSession, payment: PaymentRow, result: ProviderResult) -> PaymentRow:
    """Record what the provider says about a (locked) payment's charge. Forward only: a payment the
    provider has decided already (or that was cancelled) keeps its status whatever a late answer says."""
    if PaymentStatus(payment.status) not in OPEN_STATUSES:
        return payment
    no_action: dict[str, str | None] = {"next_action_type": None, "client_secret": None, "redirect_url": None}
    values: dict[str, object] = {"provider_reference": result.reference or payment.provider_reference}
    if result.status is ProviderStatus.SUCCEEDED:
        values |= {"status": PaymentStatus.SUCCEEDED.value, "captured_amount": payment.amount,
                   "failure_reason": None, **no_action}
    elif result.status is ProviderStatus.FAILED:
        values |= {"status": PaymentStatus.FAILED.value, "failure_reason": result.failure_reason, **no_action}
    elif result.status is ProviderStatus.REQUIRES_ACTION and result.next_action is not None:
        action = result.next_action
        values |= {"status": PaymentStatus.REQUIRES_ACTION.value, "next_action_type": action.type,
                   "client_secret": action.client_secret, "redirect_url": action.redirect_url}
    else:
        # PROCESSING: no event on purpose. The order stays AWAITING_PAYMENT until the provider decides (webhook,
        # reconciler) or the saga's timeout cancels it, and that order.cancelled cancels the intent here.
        values |= {"status": PaymentStatus.PROCESSING.value, **no_action}
    payment = await repository.update_payment(session, payment.id, values)
    if payment.status == PaymentStatus.SUCCEEDED.value:
        assert payment.amount is not None and payment.currency is not None and payment.provider is not None
        await add_event(session, SCHEMA, PaymentSuccessful(
            order_id=payment.order_id, payment_id=payment.id, amount=payment.amount, currency=payment.currency,
            provider=payment.provider), key=payment.order_id)
    elif payment.status == PaymentStatus.FAILED.value:
        await add_event(session, SCHEMA, PaymentFailed(order_id=payment.order_id, payment_id=payment.id,
                                                       reason=result.failure_reason or "unknown"), key=payment.order_id)
    await session.flush()
    return payment


async def reconcile_payment(session: AsyncSession, providers: Mapping[str, PaymentProvider], sessions: Sessions,
                            payment: PaymentRow) -> PaymentRow:
    """Settle a locked open payment from what the provider knows now: a charge left pending or unanswered is
    resumed (same idempotency key, or the intent it already created); one waiting for the shopper is looked up."""
    status = PaymentStatus(payment.status)
    if status not in OPEN_STATUSES:
        return payment
    if status is PaymentStatus.REQUIRES_ACTION and payment.provider_reference is not None:
        try:
            result = await _gateway(providers, payment).retrieve(reference=payment.provider_reference)
        except ProviderError:
            log.warning("provider does not know the intent of an open payment", extra={"payment_id": payment.id})
            return payment
        return await apply_charge_result(session, payment, result)
    if payment.payment_method is None:
        # Written before payments kept the token (an older release): it cannot be resumed; the saga's payment
        # timeout cancels its order, and that cancels the intent.
        return payment
    return await _run_charge(session, providers, sessions, payment)


async def confirm_payment(session: AsyncSession, providers: Mapping[str, PaymentProvider], sessions: Sessions, *,
                          caller: Principal, order_id: int) -> PaymentRow:
    """The shopper's client says it completed the provider's step (3-D Secure): ask the provider now rather than
    wait for its webhook. The order's owner or an ADMIN."""
    payment = await repository.get_payment_by_order(session, order_id)
    if payment is None or payment.is_tombstone:
        raise PaymentNotFound(order_id)
    if payment.user_id != caller.user_id and not caller.has_role("ADMIN"):
        raise NotYourPayment()
    if PaymentStatus(payment.status) not in OPEN_STATUSES:
        return payment
    locked = await repository.get_payment_by_order_for_update(session, order_id)
    assert locked is not None  # payments are never deleted
    return await reconcile_payment(session, providers, sessions, locked)


# ---- undoing a cancelled order's payment ------------------------------------------------------------------

async def cancel_order_payment(session: AsyncSession, providers: Mapping[str, PaymentProvider],
                               sessions: Sessions, *, order_id: int, user_id: int) -> PaymentRow:
    """Undo whatever payments did for a cancelled order: refund what was captured, cancel an open intent,
    or leave a CANCELLED tombstone so a late order.confirmed charges nothing."""
    tombstone = await repository.insert_payment_if_absent(session, {
        "id": next_id(), "order_id": order_id, "user_id": user_id, "status": PaymentStatus.CANCELLED.value})
    if tombstone is not None:
        await session.flush()
        return tombstone

    # Locked so a concurrent charge (which holds this lock until its answer is recorded) finishes first.
    payment = await repository.get_payment_by_order_for_update(session, order_id)
    assert payment is not None  # the insert conflicted on order_id, and payments are never deleted
    if PaymentStatus(payment.status) in OPEN_STATUSES:
        payment = await _cancel_open_charge(session, providers, payment)
    if PaymentStatus(payment.status) in CAPTURED_STATUSES:
        payment = await _refund_the_rest(session, providers, sessions, payment)
    # FAILED (declined: nothing captured), CANCELLED: nothing left to undo.
    await session.flush()
    return payment


async def _cancel_open_charge(session: AsyncSession, providers: Mapping[str, PaymentProvider],
                              payment: PaymentRow) -> PaymentRow:
    reference = payment.provider_reference or await repository.charge_intent(session, payment.id)
    if reference is None:
        # The provider never created an intent: there is nothing to cancel there.
        return await repository.update_payment(session, payment.id, {"status": PaymentStatus.CANCELLED.value})
    gateway = _gateway(providers, payment)
    # The intent may have been decided since this row was written (a crash before its answer was recorded, the
    # shopper completing 3-D Secure just now): a captured payment is refunded below, not "cancelled".
    current = await gateway.retrieve(reference=reference)
    if current.status in (ProviderStatus.SUCCEEDED, ProviderStatus.FAILED):
        return await apply_charge_result(session, payment, current)
    key = cancel_key(payment.id)
    result = await gateway.cancel(idempotency_key=key, reference=reference)
    await _audit(session, payment, "cancel", key, result)
    if result.status is not ProviderStatus.SUCCEEDED:
        raise CancelNotCompleted(payment.order_id, result.status.value, result.failure_reason)
    return await repository.update_payment(session, payment.id, {
        "status": PaymentStatus.CANCELLED.value, "provider_reference": reference, "next_action_type": None,
        "client_secret": None, "redirect_url": None})


async def _refund_the_rest(session: AsyncSession, providers: Mapping[str, PaymentProvider], sessions: Sessions,
                           payment: PaymentRow) -> PaymentRow:
    """Refund everything captured and not refunded yet, for a cancelled order. The refund that an earlier
    attempt left pending is finished first (same key), so a retry never refunds twice."""
    gateway = _gateway(providers, payment)
    for refund in await repository.pending_refunds_of(session, payment.id):
        result = await _ask_refund(gateway, payment, refund, resume=True)
        payment, refund = await _settle_refund(session, payment, refund, result)
        if refund.status != RefundStatus.SUCCEEDED.value:
            raise RefundNotCompleted(payment.order_id, result.status.value, result.failure_reason)
    rest = await _refundable_rest(session, payment)
    if rest <= 0:
        return payment
    refund = await _record_pending_refund(sessions, payment, rest, reason="order_cancelled")
    result = await _ask_refund(gateway, payment, refund, resume=False)
    payment, refund = await _settle_refund(session, payment, refund, result)
    if refund.status != RefundStatus.SUCCEEDED.value:
        # Never dropped silently: the event is retried (this refund is resumed with its key), then the DLQ.
        raise RefundNotCompleted(payment.order_id, result.status.value, result.failure_reason)
    return payment


# ---- refunds ----------------------------------------------------------------------------------------------

async def _refundable_rest(session: AsyncSession, payment: PaymentRow) -> Decimal:
    """Captured minus refunded minus refunds still pending. Our own guard: a provider may not check it."""
    captured = payment.captured_amount or Decimal("0.00")
    return captured - payment.refunded_amount - await repository.pending_refund_total(session, payment.id)


async def _record_pending_refund(sessions: Sessions, payment: PaymentRow, amount: Decimal,
                                 reason: str | None) -> RefundRow:
    assert payment.currency is not None
    async with unit_of_work(sessions) as own:
        return await repository.insert_refund(own, {
            "id": next_id(), "payment_id": payment.id, "amount": amount, "currency": payment.currency,
            "reason": reason, "status": RefundStatus.PENDING.value})


async def _ask_refund(gateway: PaymentProvider, payment: PaymentRow, refund: RefundRow, *,
                      resume: bool) -> ProviderResult:
    """Refund at the provider. `resume`: an earlier attempt may have reached it, so look for that refund first
    (a provider that keeps idempotency keys answers None, and asking again with the same key is the lookup)."""
    assert payment.provider_reference is not None  # a captured payment
    if resume:
        found = await gateway.find_refund(reference=payment.provider_reference, refund_id=str(refund.id))
        if found is not None:
            return found
    return await gateway.refund(
        idempotency_key=refund_key(refund.id), reference=payment.provider_reference, amount=refund.amount,
        metadata={"refund_id": str(refund.id), "payment_id": str(payment.id), "order_id": str(payment.order_id)})


async def _settle_refund(session: AsyncSession, payment: PaymentRow, refund: RefundRow,
                         result: ProviderResult) -> tuple[PaymentRow, RefundRow]:
    """Record the provider's answer about a pending refund of a locked payment (PROCESSING leaves it pending)."""
    await _audit(session, payment, "refund", refund_key(refund.id), result)
    if refund.status != RefundStatus.PENDING.value or result.status is ProviderStatus.PROCESSING:
        return payment, refund
    if result.status is not ProviderStatus.SUCCEEDED:
        refund = await repository.update_refund(session, refund.id, {
            "status": RefundStatus.FAILED.value, "failure_reason": result.failure_reason,
            "provider_reference": result.reference})
        return payment, refund
    refund = await repository.update_refund(session, refund.id, {
        "status": RefundStatus.SUCCEEDED.value, "provider_reference": result.reference, "failure_reason": None})
    refunded = payment.refunded_amount + refund.amount
    fully = refunded >= (payment.captured_amount or Decimal("0.00"))
    payment = await repository.update_payment(session, payment.id, {
        "refunded_amount": refunded,
        "status": (PaymentStatus.REFUNDED if fully else PaymentStatus.PARTIALLY_REFUNDED).value})
    assert payment.currency is not None
    await add_event(session, SCHEMA, PaymentRefunded(
        order_id=payment.order_id, payment_id=payment.id, amount=refund.amount, currency=payment.currency,
        refunded_total=refunded, fully_refunded=fully), key=payment.order_id)
    return payment, refund


@dataclasses.dataclass(frozen=True)
class RefundIn:
    payment_id: int
    amount: str | None
    reason: str | None


def _validated_refund(refund_in: RefundIn) -> tuple[Decimal | None, str | None]:
    amount = None
    if refund_in.amount is not None:
        amount = parse_amount(refund_in.amount, field="amount")
        if amount <= 0:
            raise BadUserInput("'amount' must be more than 0", field="amount")
    reason = (refund_in.reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REFUND_REASON:
        raise BadUserInput(f"'reason' must be at most {MAX_REFUND_REASON} characters", field="reason")
    return amount, reason


async def refund_payment(sessions: Sessions, providers: Mapping[str, PaymentProvider], *, caller: Principal,
                         refund_in: RefundIn) -> RefundRow:
    """An ADMIN refunds `amount` (None: all that is left) of a captured payment. The refund is decided under the
    payment's lock and committed PENDING before the provider is asked, so concurrent refunds can never add up
    to more than was captured; the provider's answer is recorded in a second transaction. A provider that
    cannot be reached leaves the refund PENDING for the reconciler."""
    caller.require_role("ADMIN")
    amount, reason = _validated_refund(refund_in)
    async with unit_of_work(sessions) as session:
        payment = await repository.get_payment_for_update(session, refund_in.payment_id)
        if payment is None or payment.is_tombstone:
            raise PaymentNotFound(refund_in.payment_id)
        if PaymentStatus(payment.status) not in CAPTURED_STATUSES:
            raise NothingCaptured(payment.id, payment.status)
        rest = await _refundable_rest(session, payment)
        amount = rest if amount is None else amount
        if amount > rest or amount <= 0:
            raise RefundTooLarge(payment.id, f"{rest:.2f}")
        assert payment.currency is not None
        refund = await repository.insert_refund(session, {
            "id": next_id(), "payment_id": payment.id, "amount": amount, "currency": payment.currency,
            "reason": reason, "status": RefundStatus.PENDING.value})
    async with unit_of_work(sessions) as session:
        # Refund before payment: the reconciler takes these locks in the same order.
        locked_refund = await repository.get_refund_for_update(session, refund.id)
        locked = await repository.get_payment_for_update(session, payment.id)
        assert locked_refund is not None and locked is not None  # neither is ever deleted
        result = await _ask_refund(_gateway(providers, locked), locked, locked_refund, resume=False)
        _payment, refund = await _settle_refund(session, locked, locked_refund, result)
    return refund


# ---- reconciliation ---------------------------------------------------------------------------------------

async def reconcile_once(sessions: Sessions, providers: Mapping[str, PaymentProvider], *, idle_for: timedelta,
                         limit: int) -> int:
    """Settle up to `limit` payments and refunds the provider has not decided for `idle_for`, one per
    transaction (provider calls are slow; each settlement commits, with its event, on its own). One that stays
    undecided, or fails, goes to the back of the queue (its updated_at), so it neither is asked twice in a run
    nor holds up the others. Returns how many were looked at."""
    async def settle_payment(session: AsyncSession, taken: list[int]) -> bool:
        payment = await repository.lock_open_payment_to_reconcile(session, idle_for=idle_for)
        if payment is None:
            return False
        taken.append(payment.id)
        before = payment.status
        settled = await reconcile_payment(session, providers, sessions, payment)
        if settled.status == before:
            await repository.update_payment(session, payment.id, {})
        return True

    async def settle_refund(session: AsyncSession, taken: list[int]) -> bool:
        refund = await repository.lock_pending_refund_to_reconcile(session, idle_for=idle_for)
        if refund is None:
            return False
        taken.append(refund.id)
        payment = await repository.get_payment_for_update(session, refund.payment_id)
        if payment is None:
            raise RuntimeError(f"refund {refund.id} names no payment")
        result = await _ask_refund(_gateway(providers, payment), payment, refund, resume=True)
        _payment, settled_refund = await _settle_refund(session, payment, refund, result)
        if settled_refund.status == RefundStatus.PENDING.value:
            await repository.update_refund(session, refund.id, {})
        return True

    async def requeue_payment(session: AsyncSession, payment_id: int) -> None:
        await repository.update_payment(session, payment_id, {})

    async def requeue_refund(session: AsyncSession, refund_id: int) -> None:
        await repository.update_refund(session, refund_id, {})

    looked = await _reconcile_queue(sessions, limit, settle_payment, requeue_payment, "payment")
    return looked + await _reconcile_queue(sessions, limit - looked, settle_refund, requeue_refund, "refund")


async def _reconcile_queue(sessions: Sessions, limit: int,
                           settle_next: Callable[[AsyncSession, list[int]], Awaitable[bool]],
                           requeue: Callable[[AsyncSession, int], Awaitable[None]], what: str) -> int:
    """Up to `limit` rounds of `settle_next` (False: the queue is empty), each in its own transaction. A round that
    fails after taking a row (`taken`) logs it and sends that row to the back of the queue instead of stopping."""
    looked = 0
    while looked < limit:
        taken: list[int] = []
        try:
            async with unit_of_work(sessions) as session:
                if not await settle_next(session, taken):
                    break
        except Exception:
            if not taken:
                raise
            log.exception(f"reconciling a {what} failed; it waits for the next run", extra={f"{what}_id": taken[0]})
            async with unit_of_work(sessions) as session:
                await requeue(session, taken[0])
        looked += 1
    return looked


# ---- provider notifications (webhooks) --------------------------------------------------------------------

async def apply_provider_update(session: AsyncSession, *, payment_id: int | None, reference: str,
                                result: ProviderResult) -> PaymentRow | None:
    """What a provider's notification says about one charge (found by our payment id in its metadata, else by
    its intent id), applied by state. None when no payment of ours matches (another system's intent)."""
    payment = None
    if payment_id is not None:
        payment = await repository.get_payment_for_update(session, payment_id)
    if payment is None:
        payment = await repository.get_payment_by_reference_for_update(session, reference)
    if payment is None:
        return None
    if payment.provider_reference not in (None, reference):
        log.warning("notification about another intent of this payment", extra={"payment_id": payment.id})
        return payment
    return await apply_charge_result(session, payment, result)


async def apply_provider_refunds(session: AsyncSession, *, payment_id: int | None, reference: str,
                                 provider_refunded: Decimal) -> PaymentRow | None:
    """The provider says `provider_refunded` of the charge `reference` is refunded in all (Stripe's
    charge.refunded). What exceeds the refunds we know of (settled or pending) was refunded outside NexusCart
    (e.g. in Stripe's dashboard): it is recorded as one refund, with its event. An older notification (a smaller
    total) changes nothing."""
    payment = None
    if payment_id is not None:
        payment = await repository.get_payment_for_update(session, payment_id)
    if payment is None:
        payment = await repository.get_payment_by_reference_for_update(session, reference)
    if payment is None or PaymentStatus(payment.status) not in CAPTURED_STATUSES:
        return payment
    known = payment.refunded_amount + await repository.pending_refund_total(session, payment.id)
    extra = min(provider_refunded, payment.captured_amount or Decimal("0.00")) - known
    if extra <= 0:
        return payment
    assert payment.currency is not None
    refund = await repository.insert_refund(session, {
        "id": next_id(), "payment_id": payment.id, "amount": extra, "currency": payment.currency,
        "reason": "refunded_at_provider", "status": RefundStatus.PENDING.value})
    payment, _refund = await _settle_refund(session, payment, refund,
                                            ProviderResult(ProviderStatus.SUCCEEDED, None))
    return payment


# ---- reads ------------------------------------------------------------------------------------------------

async def payments_by_order_ids(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, PaymentRow]:
    """Payments of these orders by order id; tombstones are left out (no payment was ever attempted)."""
    rows = await repository.payments_by_order_ids(session, order_ids)
    return {r.order_id: r for r in rows if not r.is_tombstone}


async def refunds_by_payment_ids(session: AsyncSession, payment_ids: Sequence[int]) -> dict[int, list[RefundRow]]:
    found: dict[int, list[RefundRow]] = {p: [] for p in payment_ids}
    for refund in await repository.refunds_by_payment_ids(session, payment_ids):
        found[refund.payment_id].append(refund)
    return found


async def get_payment_or_raise(session: AsyncSession, payment_id: int) -> PaymentRow:
    payment = await repository.get_payment(session, payment_id)
    if payment is None or payment.is_tombstone:
        raise PaymentNotFound(payment_id)
    return payment
