"""The `payments` consumer's handler against real Postgres and Redis: the saga steps of commerce-spine.md."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from kernel.events import EventEnvelope, MalformedEvent
from kernel.ids import next_id
from subgraphs.payments.providers import IdempotencyKeyReused
from tests.payments.helpers import cancelled, confirmed, outbox, payment, provider_calls


def test_one_consumer_group_on_the_order_topics(spec) -> None:
    assert (spec.name, spec.schema, spec.topics) == ("payments", "payments", ("order.confirmed", "order.cancelled"))


async def test_a_good_card_is_charged_and_reported(deliver, db_admin, provider, order_id) -> None:
    # when orders confirms an order paid with tok_visa
    await deliver("order.confirmed", confirmed(order_id, token="tok_visa", amount="42.5"))
    # then the payment succeeded, its provider call is audited, and payment.successful is queued
    row = await payment(db_admin, order_id)
    assert row["status"] == "SUCCEEDED" and row["amount"] == Decimal("42.50") and row["user_id"] == 7
    assert row["provider_reference"].startswith("pi_sim_") and row["failure_reason"] is None
    assert await outbox(db_admin) == [{"topic": "payment.successful", "key": str(order_id), "payload": {
        "order_id": str(order_id), "payment_id": str(row["id"]), "amount": "42.50", "currency": "USD",
        "provider": "simulated"}}]
    # the idempotency key is derived from the payment, which exists (committed) before the provider is asked
    assert await provider_calls(db_admin) == [
        {"idempotency_key": f"payment:{row['id']}:charge", "operation": "charge", "outcome": "SUCCEEDED"}]
    assert [e["idempotency_key"] for e in await provider.ledger()] == [
        f"payments:simulated:idem:payment:{row['id']}:charge"]


@pytest.mark.parametrize(("token", "reason"), [("tok_chargeDeclined", "card_declined"),
                                               ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
                                               ("tok_bogus", "invalid_token")])
async def test_a_declined_card_fails_the_payment_with_its_reason(deliver, db_admin, order_id, token,
                                                                 reason) -> None:
    await deliver("order.confirmed", confirmed(order_id, token=token))
    row = await payment(db_admin, order_id)
    assert (row["status"], row["failure_reason"]) == ("FAILED", reason)
    assert await outbox(db_admin) == [{"topic": "payment.failed", "key": str(order_id), "payload": {
        "order_id": str(order_id), "payment_id": str(row["id"]), "reason": reason}}]


async def test_an_unconfigured_provider_fails_the_payment_without_calling_anyone(deliver, db_admin, provider,
                                                                                 order_id) -> None:
    await deliver("order.confirmed", confirmed(order_id, provider="stripe"))
    row = await payment(db_admin, order_id)
    assert (row["status"], row["failure_reason"]) == ("FAILED", "unsupported_provider")
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.failed"]
    assert await provider.ledger() == []


async def test_a_provider_that_never_answers_leaves_the_payment_processing(deliver, db_admin, order_id) -> None:
    await deliver("order.confirmed", confirmed(order_id, token="tok_timeout"))
    row = await payment(db_admin, order_id)
    assert row["status"] == "PROCESSING" and row["provider_reference"].startswith("pi_sim_")
    assert await outbox(db_admin) == []  # the saga's payment timeout decides, not payments


async def test_order_confirmed_twice_charges_once(deliver, db_admin, provider, order_id) -> None:
    # given an order already charged
    await deliver("order.confirmed", confirmed(order_id))
    first = await payment(db_admin, order_id)
    # when the confirmation arrives again (a second event, so the inbox does not catch it)
    await deliver("order.confirmed", confirmed(order_id))
    # then nothing more was charged or emitted
    assert await payment(db_admin, order_id) == first
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]
    assert len(await provider.ledger()) == 1


async def test_a_rolled_back_charge_is_retried_without_a_second_charge(deliver, worker_resources, spec,
                                                                       db_admin, provider, order_id) -> None:
    # given the handler charged the card but its transaction did not commit (a crash before COMMIT)
    envelope = EventEnvelope.new("order.confirmed", confirmed(order_id))
    async with worker_resources.session_factory() as session, session.begin():
        await spec.handler(session, envelope)
        await session.rollback()
    # the charge-pending row was committed before the provider was asked; its outcome was not
    pending = await payment(db_admin, order_id)
    assert pending["status"] == "PENDING" and pending["provider_reference"] is None
    # when the event is redelivered
    await deliver("order.confirmed", {}, envelope)
    # then the provider's first answer is reused: one charge, one success event
    assert (await payment(db_admin, order_id))["status"] == "SUCCEEDED"
    assert [e["operation"] for e in await provider.ledger()] == ["charge"]
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]


async def test_a_cancel_after_a_charge_that_never_committed_refunds_it(worker_resources, spec, deliver, db_admin,
                                                                       provider, order_id) -> None:
    # given the provider charged the card but the handler's transaction never committed (a killed worker)
    envelope = EventEnvelope.new("order.confirmed", confirmed(order_id, amount="12.00"))
    async with worker_resources.session_factory() as session, session.begin():
        await spec.handler(session, envelope)
        await session.rollback()
    # when the order is cancelled (e.g. by the payment timeout) before the confirmation is redelivered
    await deliver("order.cancelled", cancelled(order_id, reason="PAYMENT_TIMEOUT", previous_status="AWAITING_PAYMENT"))
    # then the captured money went back: the pending payment named its charge before the provider acted
    row = await payment(db_admin, order_id)
    assert (row["status"], row["refunded_amount"]) == ("REFUNDED", Decimal("12.00"))
    assert [e["operation"] for e in await provider.ledger()] == ["charge", "refund"]
    # and the late redelivery charges nothing more
    await deliver("order.confirmed", {}, envelope)
    assert [e["operation"] for e in await provider.ledger()] == ["charge", "refund"]
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful", "payment.refunded"]


async def test_cancel_before_confirm_leaves_a_tombstone_and_nothing_is_charged(deliver, db_admin, provider,
                                                                              order_id) -> None:
    # given the order was cancelled (e.g. by the payment timeout) before payments saw its confirmation
    await deliver("order.cancelled", cancelled(order_id, reason="PAYMENT_TIMEOUT", previous_status="AWAITING_PAYMENT"))
    tombstone = await payment(db_admin, order_id)
    assert tombstone["status"] == "CANCELLED" and tombstone["amount"] is None
    # when the confirmation arrives late
    await deliver("order.confirmed", confirmed(order_id))
    # then nothing was charged and nothing emitted
    assert await payment(db_admin, order_id) == tombstone
    assert await provider.ledger() == [] and await outbox(db_admin) == []


async def test_cancel_after_success_refunds(deliver, db_admin, provider, order_id) -> None:
    # given a captured payment
    await deliver("order.confirmed", confirmed(order_id, amount="19.99", currency="EUR"))
    # when the customer cancels the order
    await deliver("order.cancelled", cancelled(order_id))
    # then the money went back and orders is told
    row = await payment(db_admin, order_id)
    assert row["status"] == "REFUNDED" and row["refunded_amount"] == Decimal("19.99")
    assert (await outbox(db_admin))[1] == {"topic": "payment.refunded", "key": str(order_id), "payload": {
        "order_id": str(order_id), "payment_id": str(row["id"]), "amount": "19.99", "currency": "EUR",
        "refunded_total": "19.99", "fully_refunded": True}}
    assert [e["operation"] for e in await provider.ledger()] == ["charge", "refund"]
    refund_id = await db_admin.fetchval("SELECT id FROM payments.refunds WHERE payment_id = $1", row["id"])
    assert [c["idempotency_key"] for c in await provider_calls(db_admin)] == [
        f"payment:{row['id']}:charge", f"refund:{refund_id}"]
    # and a second cancellation refunds nothing more
    await deliver("order.cancelled", cancelled(order_id))
    assert len(await outbox(db_admin)) == 2 and len(await provider.ledger()) == 2


async def test_cancel_while_processing_cancels_the_intent(deliver, db_admin, provider, order_id) -> None:
    await deliver("order.confirmed", confirmed(order_id, token="tok_timeout"))
    await deliver("order.cancelled", cancelled(order_id, reason="PAYMENT_TIMEOUT", previous_status="AWAITING_PAYMENT"))
    assert (await payment(db_admin, order_id))["status"] == "CANCELLED"
    assert [e["operation"] for e in await provider.ledger()] == ["charge", "cancel"]
    assert await outbox(db_admin) == []  # nothing was captured, so nothing to report


async def test_cancel_after_a_decline_does_nothing(deliver, db_admin, provider, order_id) -> None:
    await deliver("order.confirmed", confirmed(order_id, token="tok_chargeDeclined"))
    await deliver("order.cancelled", cancelled(order_id, reason="PAYMENT_DECLINED", previous_status="AWAITING_PAYMENT"))
    assert (await payment(db_admin, order_id))["status"] == "FAILED"
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.failed"]
    assert len(await provider.ledger()) == 1


async def test_a_key_reused_with_other_parameters_rolls_the_event_back(deliver, provider, db_admin,
                                                                       order_id) -> None:
    # given a charge left pending by an earlier attempt, whose key the provider saw with another amount (should
    # never happen: a bug, or a reused id); the consumer must retry and park it, never guess
    payment_id = next_id()
    await db_admin.execute(
        "INSERT INTO payments.payments (id, order_id, user_id, amount, currency, provider, status, payment_method) "
        "VALUES ($1, $2, 7, 2.00, 'USD', 'simulated', 'PENDING', 'tok_visa')", payment_id, order_id)
    await provider.charge(idempotency_key=f"payment:{payment_id}:charge", amount=Decimal("1.00"), currency="USD",
                          token="tok_visa", metadata={})
    with pytest.raises(IdempotencyKeyReused):
        await deliver("order.confirmed", confirmed(order_id, amount="2.00"))
    assert (await payment(db_admin, order_id))["status"] == "PENDING" and await outbox(db_admin) == []


@pytest.mark.parametrize("payload", [{}, {"order_id": "x", "user_id": "1"},
                                     {"order_id": "1", "user_id": "1", "amount": "abc", "currency": "USD",
                                      "payment": {"provider": "simulated", "token": "tok_visa"}},
                                     {"order_id": "1", "user_id": "1", "amount": "1.00", "currency": "USD"}])
async def test_malformed_confirmations_are_refused(deliver, db_admin, payload) -> None:
    with pytest.raises(MalformedEvent):
        await deliver("order.confirmed", payload)
    assert await db_admin.fetchval("SELECT count(*) FROM payments.payments") == 0


async def _wait_until_blocked_on_a_lock(db_admin) -> None:
    """Poll Postgres (not the clock) until some session waits on a lock held by another transaction."""
    for _ in range(500):
        if await db_admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"):
            return
        await asyncio.sleep(0.01)  # poll interval only; the condition is the lock wait itself
    raise AssertionError("the cancellation never waited for the charging transaction")


async def test_a_cancel_racing_a_charge_on_another_worker_refunds_it(worker_resources, spec, deliver,
                                                                     db_admin, provider, order_id) -> None:
    # given worker A is charging the order and has not committed yet
    async with worker_resources.session_factory() as session, session.begin():
        await spec.handler(session, EventEnvelope.new("order.confirmed", confirmed(order_id)))
        # when worker B handles the order's cancellation meanwhile
        cancelling = asyncio.create_task(deliver("order.cancelled", cancelled(order_id)))
        await _wait_until_blocked_on_a_lock(db_admin)
        assert not cancelling.done()
    await cancelling
    # then B waited for A's charge and refunded it, instead of leaving a tombstone beside a captured payment
    assert (await payment(db_admin, order_id))["status"] == "REFUNDED"
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful", "payment.refunded"]
    assert [e["operation"] for e in await provider.ledger()] == ["charge", "refund"]


async def test_a_charge_in_a_failed_batch_is_never_left_captured_without_a_payment(
        spec, worker_resources, deliver, db_admin, provider, order_id) -> None:
    import types

    from kernel.consumer import IdempotentConsumer

    # given a burst on the order.confirmed partition: our order's charge, then an event that cannot be applied
    good = EventEnvelope.new("order.confirmed", confirmed(order_id, token="tok_visa"))
    poison = EventEnvelope.new("order.confirmed", {"order_id": "garbage"})
    records = [types.SimpleNamespace(topic="order.confirmed", key=b"k", value=e.to_json()) for e in (good, poison)]

    class NoDlq:
        async def send_and_wait(self, *_args, **_kwargs) -> None:
            return None

    consumer = IdempotentConsumer(name=spec.name, schema=spec.schema, consumer=None, dlq_producer=NoDlq(),
                                  session_factory=worker_resources.session_factory, handler=spec.handler,
                                  max_attempts=1, backoff_base_seconds=0,
                                  transaction_batch=getattr(spec, "transaction_batch", 20))
    # and the customer's cancellation, on the other topic, gets its turn as soon as the first transaction ends
    # (in production it was waiting on the payment row's unique index)
    one_by_one = consumer.process
    cancelled_yet = False

    async def process(record) -> str:
        nonlocal cancelled_yet
        if not cancelled_yet:
            cancelled_yet = True
            await deliver("order.cancelled", cancelled(order_id, previous_status="AWAITING_PAYMENT"))
        return await one_by_one(record)

    consumer.process = process  # type: ignore[method-assign]  # wraps the real one to interleave a delivery
    await consumer._apply_partition(records)
    # then money captured at the provider is either recorded as a payment or refunded, never lost
    ours = [e for e in await provider.ledger() if str(order_id) in e["idempotency_key"]]
    captured = any(e["operation"] == "charge" and e["status"] == "SUCCEEDED" for e in ours)
    refunded = any(e["operation"] == "refund" and e["status"] == "SUCCEEDED" for e in ours)
    row = await payment(db_admin, order_id)
    assert not captured or refunded or row["status"] == "SUCCEEDED", (ours, row)
