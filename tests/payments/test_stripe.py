"""The `stripe` provider with the real `stripe` SDK against localstripe (a stateful fake Stripe server started
here), through the payments consumer, reconciler, webhook route and mutations, on real Postgres and Redis."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe

from kernel.consumer import ConsumerSpec, WorkerResources
from kernel.events import EventEnvelope
from kernel.settings import Settings
from nexuscart.infra import free_port
from nexuscart.localstripe import LocalStripe, start_localstripe
from subgraphs.payments import service
from subgraphs.payments.consumers import consumer_specs, worker_providers
from tests.conftest import served_in_process
from tests.payments.helpers import cancelled, confirmed, outbox, payment

WEBHOOK_SECRET = "whsec_nexuscart_tests"
THREE_D_SECURE_CARD = "4000002500003155"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    server = start_localstripe()
    yield server
    server.stop()


def stripe_settings(settings: Settings, server: LocalStripe, **overrides: Any) -> Settings:
    return settings.model_copy(update={
        "payment_providers": "simulated,stripe", "stripe_api_key": server.api_key, "stripe_api_base": server.url,
        "stripe_webhook_secret": WEBHOOK_SECRET, "stripe_max_network_retries": 1, **overrides})


@pytest.fixture
async def resources(settings, localstripe, worker_resources) -> AsyncIterator[WorkerResources]:
    own = WorkerResources(settings=stripe_settings(settings, localstripe),
                          session_factory=worker_resources.session_factory, redis=worker_resources.redis)
    yield own
    await worker_providers(own).aclose()  # type: ignore[attr-defined]  # build_providers' Providers


@pytest.fixture
def stripe_spec(resources) -> ConsumerSpec:
    (only,) = consumer_specs(resources)
    return only


@pytest.fixture
def deliver_stripe(stripe_spec, resources):
    async def run(event_type: str, payload: dict[str, Any], envelope: EventEnvelope | None = None) -> EventEnvelope:
        envelope = envelope or EventEnvelope.new(event_type, payload)
        async with resources.session_factory() as session, session.begin():
            await stripe_spec.handler(session, envelope)
        return envelope

    return run


@pytest.fixture
def sdk(localstripe) -> stripe.StripeClient:
    """The test's own view of the fake Stripe (what an operator sees in the dashboard)."""
    return stripe.StripeClient(localstripe.api_key, base_addresses={"api": localstripe.url})


@pytest.fixture
async def payments_app(settings, localstripe) -> AsyncIterator[httpx.AsyncClient]:
    from subgraphs.payments.app import build_app
    async with served_in_process(build_app(stripe_settings(settings, localstripe)), "http://payments") as http:
        yield http


async def authenticate(localstripe: LocalStripe, intent_id: str, client_secret: str, *, success: bool) -> None:
    """What Stripe.js does when the shopper passes (or fails) 3-D Secure: localstripe's own endpoint for it."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{localstripe.url}/v1/payment_intents/{intent_id}/_authenticate", data={
            "client_secret": client_secret, "success": "true" if success else "false", "key": "pk_test_x"})
    answer.raise_for_status()


def three_d_secure_card(sdk: stripe.StripeClient) -> str:
    method = sdk.v1.payment_methods.create(params={"type": "card", "card": {
        "number": THREE_D_SECURE_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    return method.id


def intents_of(sdk: stripe.StripeClient, payment_id: int) -> list[Any]:
    return [i for i in sdk.v1.payment_intents.list(params={"limit": 100}).data
            if i.metadata.to_dict().get("payment_id") == str(payment_id)]


def signed(event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header, signed the way Stripe (and localstripe) signs."""
    body = json.dumps(event).encode()
    timestamp = at if at is not None else int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={timestamp},v1={mac}"


def intent_event(intent: Any, event_type: str, event_id: str) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": event_type, "created": int(time.time()),
            "api_version": "2026-08-26.dahlia", "data": {"object": intent.to_dict()}}


# ---- charges ------------------------------------------------------------------------------------------------

async def test_a_good_card_is_charged_once_through_a_payment_intent(deliver_stripe, db_admin, sdk, order_id) -> None:
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_visa",
                                                      amount="42.50", currency="EUR"))
    row = await payment(db_admin, order_id)
    assert row["status"] == "SUCCEEDED" and row["captured_amount"] == Decimal("42.50")
    [intent] = intents_of(sdk, row["id"])
    assert (intent.id, intent.status, intent.amount, intent.currency) == (
        row["provider_reference"], "succeeded", 4250, "eur")
    assert intent.metadata["order_id"] == str(order_id)
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]


async def test_a_declined_card_fails_with_stripes_reason(deliver_stripe, db_admin, order_id) -> None:
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe",
                                                      token="pm_card_chargeCustomerFail"))
    row = await payment(db_admin, order_id)
    assert (row["status"], row["failure_reason"]) == ("FAILED", "card_declined")
    assert row["provider_reference"].startswith("pi_")
    assert [e["payload"]["reason"] for e in await outbox(db_admin)] == ["card_declined"]


async def test_a_payment_method_stripe_does_not_know_fails_the_payment(deliver_stripe, db_admin, order_id) -> None:
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token="pm_nothing_here"))
    row = await payment(db_admin, order_id)
    assert (row["status"], row["failure_reason"]) == ("FAILED", "invalid_payment_method")


async def test_three_d_secure_waits_for_the_shopper_then_succeeds(deliver_stripe, resources, localstripe, sdk,
                                                                  db_admin, order_id, make_user) -> None:
    # given a card that needs 3-D Secure
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token=three_d_secure_card(sdk)))
    row = await payment(db_admin, order_id)
    assert row["status"] == "REQUIRES_ACTION" and row["next_action_type"] == "use_stripe_sdk"
    assert row["client_secret"].startswith(row["provider_reference"] + "_secret_")
    assert await outbox(db_admin) == []  # the order waits; nothing is decided yet
    # when the shopper completes it (Stripe.js would) and the client calls confirmPayment
    await authenticate(localstripe, row["provider_reference"], row["client_secret"], success=True)
    async with resources.session_factory() as session, session.begin():
        settled = await service.confirm_payment(session, worker_providers(resources), resources.session_factory,
                                                caller=_principal(7), order_id=order_id)
    # then the payment succeeded and the saga is told
    assert settled.status == "SUCCEEDED"
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]
    assert (await payment(db_admin, order_id))["client_secret"] is None


async def test_three_d_secure_failed_fails_the_payment(deliver_stripe, resources, localstripe, sdk, db_admin,
                                                       order_id) -> None:
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token=three_d_secure_card(sdk)))
    row = await payment(db_admin, order_id)
    await authenticate(localstripe, row["provider_reference"], row["client_secret"], success=False)
    async with resources.session_factory() as session, session.begin():
        settled = await service.confirm_payment(session, worker_providers(resources), resources.session_factory,
                                                caller=_principal(7), order_id=order_id)
    assert (settled.status, settled.failure_reason) == ("FAILED", "payment_intent_authentication_failure")
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.failed"]


async def test_confirm_payment_of_someone_elses_order_is_forbidden(deliver_stripe, resources, db_admin,
                                                                   order_id) -> None:
    from kernel.errors import Forbidden
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_visa"))
    async with resources.session_factory() as session, session.begin():
        with pytest.raises(Forbidden):
            await service.confirm_payment(session, worker_providers(resources), resources.session_factory,
                                          caller=_principal(8), order_id=order_id)


def _principal(user_id: int, *roles: str) -> Any:
    from kernel.auth import Principal
    return Principal(user_id=user_id, roles=frozenset(roles or ("CUSTOMER",)))


# ---- Stripe unreachable, crashes, reconciliation -------------------------------------------------------------

async def test_stripe_unreachable_leaves_the_payment_processing_until_the_reconciler_settles_it(
        settings, localstripe, worker_resources, resources, db_admin, sdk, order_id) -> None:
    # given Stripe cannot be reached during the charge (the SDK retried with the same key, then gave up)
    down = WorkerResources(settings=stripe_settings(settings, localstripe,
                                                    stripe_api_base=f"http://127.0.0.1:{free_port()}"),
                           session_factory=worker_resources.session_factory, redis=worker_resources.redis)
    (spec,) = consumer_specs(down)
    async with down.session_factory() as session, session.begin():
        await spec.handler(session, EventEnvelope.new("order.confirmed", confirmed(
            order_id, provider="stripe", token="pm_card_visa")))
    row = await payment(db_admin, order_id)
    # then nothing was guessed: the payment is PROCESSING, no event
    assert row["status"] == "PROCESSING" and row["provider_reference"] is None
    assert await outbox(db_admin) == [] and intents_of(sdk, row["id"]) == []
    # when Stripe is back and the reconciler runs
    looked = await service.reconcile_once(resources.session_factory, worker_providers(resources),
                                          idle_for=timedelta(0), limit=10)
    # then it resumed the charge (same idempotency key) and settled it
    assert looked >= 1
    row = await payment(db_admin, order_id)
    assert row["status"] == "SUCCEEDED"
    assert [i.status for i in intents_of(sdk, row["id"])] == ["succeeded"]
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]
    await worker_providers(down).aclose()  # type: ignore[attr-defined]  # build_providers' Providers


async def test_a_crash_between_the_charge_and_its_commit_never_charges_twice(stripe_spec, deliver_stripe,
                                                                             resources, db_admin, sdk,
                                                                             order_id) -> None:
    # given the worker charged the card, then died before its transaction committed
    envelope = EventEnvelope.new("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_visa"))
    async with resources.session_factory() as session, session.begin():
        await stripe_spec.handler(session, envelope)
        await session.rollback()
    row = await payment(db_admin, order_id)
    assert row["status"] == "PENDING"  # the charge-pending row was committed first
    [intent] = intents_of(sdk, row["id"])
    assert intent.status == "succeeded"  # money moved, and its intent id was committed before it did
    # when the event is redelivered (localstripe ignores idempotency keys: only our own record prevents a 2nd charge)
    await deliver_stripe("order.confirmed", {}, envelope)
    # then the same intent is recorded, nothing charged again
    row = await payment(db_admin, order_id)
    assert (row["status"], row["provider_reference"]) == ("SUCCEEDED", intent.id)
    assert [i.id for i in intents_of(sdk, row["id"])] == [intent.id]
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]


async def test_a_crash_before_the_answer_is_settled_by_the_reconciler(stripe_spec, resources, db_admin, sdk,
                                                                      order_id) -> None:
    envelope = EventEnvelope.new("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_visa"))
    async with resources.session_factory() as session, session.begin():
        await stripe_spec.handler(session, envelope)
        await session.rollback()
    await service.reconcile_once(resources.session_factory, worker_providers(resources), idle_for=timedelta(0),
                                 limit=10)
    row = await payment(db_admin, order_id)
    assert row["status"] == "SUCCEEDED" and len(intents_of(sdk, row["id"])) == 1


async def test_cancelling_an_order_waiting_for_3ds_cancels_the_intent(deliver_stripe, db_admin, sdk,
                                                                      order_id) -> None:
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token=three_d_secure_card(sdk)))
    await deliver_stripe("order.cancelled", cancelled(order_id, reason="PAYMENT_TIMEOUT",
                                                      previous_status="AWAITING_PAYMENT"))
    row = await payment(db_admin, order_id)
    assert row["status"] == "CANCELLED"
    assert sdk.v1.payment_intents.retrieve(row["provider_reference"]).status == "canceled"


async def test_cancelling_a_paid_order_refunds_it_at_stripe(deliver_stripe, db_admin, sdk, order_id) -> None:
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_visa",
                                                      amount="19.99"))
    await deliver_stripe("order.cancelled", cancelled(order_id))
    row = await payment(db_admin, order_id)
    assert row["status"] == "REFUNDED" and row["refunded_amount"] == Decimal("19.99")
    refunds = sdk.v1.refunds.list(params={"payment_intent": row["provider_reference"]}).data
    assert [r.amount for r in refunds] == [1999]
    # and a redelivered cancellation refunds nothing more (localstripe would allow it: our guard does not)
    await deliver_stripe("order.cancelled", cancelled(order_id))
    assert len(sdk.v1.refunds.list(params={"payment_intent": row["provider_reference"]}).data) == 1


# ---- webhooks -----------------------------------------------------------------------------------------------

async def _open_stripe_payment(deliver_stripe, db_admin, sdk, order_id) -> tuple[dict[str, Any], Any]:
    """A payment waiting for 3-D Secure, and its intent."""
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token=three_d_secure_card(sdk)))
    row = await payment(db_admin, order_id)
    return row, sdk.v1.payment_intents.retrieve(row["provider_reference"])


async def test_a_signed_webhook_settles_the_payment_and_its_replays_change_nothing(
        deliver_stripe, payments_app, localstripe, db_admin, sdk, order_id) -> None:
    row, intent = await _open_stripe_payment(deliver_stripe, db_admin, sdk, order_id)
    await authenticate(localstripe, intent.id, row["client_secret"], success=True)
    succeeded = sdk.v1.payment_intents.retrieve(intent.id)
    body, signature = signed(intent_event(succeeded, "payment_intent.succeeded", "evt_replayed"))
    # when Stripe delivers the same event five times
    answers = [await payments_app.post("/webhooks/stripe", content=body, headers={"stripe-signature": signature})
               for _ in range(5)]
    # then each is acknowledged, and it was applied once
    assert [a.status_code for a in answers] == [200] * 5
    assert (await payment(db_admin, order_id))["status"] == "SUCCEEDED"
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]


@pytest.mark.parametrize("tamper", ["unsigned", "wrong_secret", "stale", "altered_body"])
async def test_a_webhook_that_is_not_signed_by_stripe_is_refused(deliver_stripe, payments_app, db_admin, sdk,
                                                                 order_id, tamper) -> None:
    _row, intent = await _open_stripe_payment(deliver_stripe, db_admin, sdk, order_id)
    forged = intent.to_dict() | {"status": "succeeded"}
    event = {"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded", "created": int(time.time()),
             "data": {"object": forged}}
    body, signature = signed(event, secret="whsec_someone_else" if tamper == "wrong_secret" else WEBHOOK_SECRET,
                             at=int(time.time()) - 301 if tamper == "stale" else None)
    headers = {} if tamper == "unsigned" else {"stripe-signature": signature}
    if tamper == "altered_body":
        body = body.replace(b'"succeeded"', b'"succeeded" ', 1)
    answer = await payments_app.post("/webhooks/stripe", content=body, headers=headers)
    assert answer.status_code == 400
    assert (await payment(db_admin, order_id))["status"] == "REQUIRES_ACTION"
    assert await outbox(db_admin) == []


async def test_an_old_webhook_never_moves_a_payment_backwards(deliver_stripe, payments_app, db_admin, sdk,
                                                              order_id) -> None:
    # given a payment that succeeded
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_visa"))
    row = await payment(db_admin, order_id)
    intent = sdk.v1.payment_intents.retrieve(row["provider_reference"])
    # when an older payment_failed event about it arrives late (out of order)
    failed = intent.to_dict() | {"status": "requires_payment_method",
                                 "last_payment_error": {"code": "card_declined"}}
    body, signature = signed({"id": "evt_old", "object": "event", "type": "payment_intent.payment_failed",
                              "created": int(time.time()), "data": {"object": failed}})
    answer = await payments_app.post("/webhooks/stripe", content=body, headers={"stripe-signature": signature})
    # then it is acknowledged and changes nothing
    assert answer.status_code == 200
    assert (await payment(db_admin, order_id))["status"] == "SUCCEEDED"
    assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]


async def test_localstripe_delivers_its_own_signed_webhook(deliver_stripe, settings, localstripe, db_admin, sdk,
                                                           order_id) -> None:
    """The signature scheme end to end: localstripe signs, our route verifies (served on a real port)."""
    import uvicorn

    from subgraphs.payments.app import build_app
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(stripe_settings(settings, localstripe)), port=port,
                                           log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(400):
            if server.started:
                break
            await asyncio.sleep(0.05)  # start-up poll; the condition is the server's own flag
        else:
            raise AssertionError("the payments app never started")
        localstripe.register_webhook(f"http://127.0.0.1:{port}/webhooks/stripe", WEBHOOK_SECRET)
        row, intent = await _open_stripe_payment(deliver_stripe, db_admin, sdk, order_id)
        await authenticate(localstripe, intent.id, row["client_secret"], success=True)
        deadline = time.monotonic() + 20
        while (await payment(db_admin, order_id))["status"] != "SUCCEEDED":
            assert time.monotonic() < deadline, "localstripe's webhook never settled the payment"
            await asyncio.sleep(0.1)  # poll for the webhook's effect
        assert [e["topic"] for e in await outbox(db_admin)] == ["payment.successful"]
    finally:
        localstripe.register_webhook("http://127.0.0.1:9/nowhere", WEBHOOK_SECRET)
        server.should_exit = True
        await serving


# ---- refunds (ADMIN refundPayment) and the Payment fields ---------------------------------------------------

REFUND = """mutation($p: ID!, $a: String, $r: String) { refundPayment(paymentId: $p, amount: $a, reason: $r) {
  id amount { amount currency } status reason failureReason } }"""
PAYMENT = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Order { payment {
  id status capturedAmount { amount } refundedAmount { amount } nextAction { type clientSecret redirectUrl }
  refunds { id amount { amount } status reason } } } } }"""


async def gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    return answer.json()


def code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


async def paid(deliver_stripe, db_admin, order_id, amount: str = "100.00") -> dict[str, Any]:
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_visa",
                                                      amount=amount, currency="EUR"))
    return await payment(db_admin, order_id)


async def test_partial_then_full_refund(deliver_stripe, payments_app, db_admin, sdk, token_for, order_id) -> None:
    row = await paid(deliver_stripe, db_admin, order_id)
    admin = token_for("ADMIN")
    # when an admin refunds 30.00, then the rest
    first = await gql(payments_app, REFUND, {"p": str(row["id"]), "a": "30", "r": "damaged item"}, admin)
    assert first["data"]["refundPayment"]["amount"] == {"amount": "30.00", "currency": "EUR"}
    assert first["data"]["refundPayment"]["status"] == "SUCCEEDED"
    view = (await gql(payments_app, PAYMENT, {"r": [{"__typename": "Order", "id": str(order_id)}]}, admin))
    shown = view["data"]["_entities"][0]["payment"]
    assert (shown["status"], shown["capturedAmount"], shown["refundedAmount"]) == (
        "PARTIALLY_REFUNDED", {"amount": "100.00"}, {"amount": "30.00"})
    assert [(r["amount"]["amount"], r["reason"]) for r in shown["refunds"]] == [("30.00", "damaged item")]
    rest = await gql(payments_app, REFUND, {"p": str(row["id"])}, admin)
    assert rest["data"]["refundPayment"]["amount"]["amount"] == "70.00"
    # then Stripe refunded 30 + 70, the payment is REFUNDED, and orders heard of both refunds
    assert sorted(r.amount for r in sdk.v1.refunds.list(params={"payment_intent": row["provider_reference"]}).data
                  ) == [3000, 7000]
    assert (await payment(db_admin, order_id))["status"] == "REFUNDED"
    refunds = [e["payload"] for e in await outbox(db_admin) if e["topic"] == "payment.refunded"]
    assert [(r["amount"], r["refunded_total"], r["fully_refunded"]) for r in refunds] == [
        ("30.00", "30.00", False), ("70.00", "100.00", True)]
    # and nothing more can be refunded
    assert code(await gql(payments_app, REFUND, {"p": str(row["id"]), "a": "0.01"}, admin)) == "BAD_USER_INPUT"


async def test_concurrent_refunds_never_add_up_to_more_than_was_captured(deliver_stripe, payments_app, db_admin,
                                                                         sdk, token_for, order_id) -> None:
    # localstripe itself would allow over-refunds: the guard under the payment's lock is ours
    row = await paid(deliver_stripe, db_admin, order_id)
    admin = token_for("ADMIN")
    answers = await asyncio.gather(*(gql(payments_app, REFUND, {"p": str(row["id"]), "a": "30"}, admin)
                                     for _ in range(5)))
    succeeded = [a for a in answers if not a.get("errors")]
    assert len(succeeded) == 3
    assert [code(a) for a in answers if a.get("errors")] == ["BAD_USER_INPUT"] * 2
    assert len(sdk.v1.refunds.list(params={"payment_intent": row["provider_reference"]}).data) == 3
    assert (await payment(db_admin, order_id))["refunded_amount"] == Decimal("90.00")


@pytest.mark.parametrize(("amount", "expected"), [("0", "BAD_USER_INPUT"), ("-5", "BAD_USER_INPUT"),
                                                  ("100.01", "BAD_USER_INPUT"), ("abc", "BAD_USER_INPUT"),
                                                  ("1.001", "BAD_USER_INPUT")])
async def test_bad_refund_amounts_refund_nothing(deliver_stripe, payments_app, db_admin, sdk, token_for, order_id,
                                                 amount, expected) -> None:
    row = await paid(deliver_stripe, db_admin, order_id)
    body = await gql(payments_app, REFUND, {"p": str(row["id"]), "a": amount}, token_for("ADMIN"))
    assert code(body) == expected
    assert sdk.v1.refunds.list(params={"payment_intent": row["provider_reference"]}).data == []
    assert await db_admin.fetchval("SELECT count(*) FROM payments.refunds") == 0


async def test_only_an_admin_refunds(deliver_stripe, payments_app, db_admin, sdk, token_for, order_id) -> None:
    row = await paid(deliver_stripe, db_admin, order_id)
    # the payment's own customer, another customer, nobody
    assert code(await gql(payments_app, REFUND, {"p": str(row["id"])}, token_for(user_id=7))) == "FORBIDDEN"
    assert code(await gql(payments_app, REFUND, {"p": str(row["id"])}, token_for(user_id=8))) == "FORBIDDEN"
    assert code(await gql(payments_app, REFUND, {"p": str(row["id"])}, None)) == "UNAUTHENTICATED"
    assert sdk.v1.refunds.list(params={"payment_intent": row["provider_reference"]}).data == []


async def test_refund_of_an_unknown_or_uncaptured_payment(deliver_stripe, payments_app, db_admin, token_for,
                                                          order_id) -> None:
    admin = token_for("ADMIN")
    assert code(await gql(payments_app, REFUND, {"p": "123456789"}, admin)) == "NOT_FOUND"
    assert code(await gql(payments_app, REFUND, {"p": "not-an-id"}, admin)) == "BAD_USER_INPUT"
    await deliver_stripe("order.confirmed", confirmed(order_id, provider="stripe", token="pm_card_chargeCustomerFail"))
    declined = await payment(db_admin, order_id)
    assert code(await gql(payments_app, REFUND, {"p": str(declined["id"])}, admin)) == "CONFLICT"


async def test_a_refund_stripe_cannot_be_reached_for_is_finished_by_the_reconciler(
        settings, localstripe, deliver_stripe, resources, db_admin, sdk, token_for, order_id) -> None:
    from subgraphs.payments.app import build_app
    row = await paid(deliver_stripe, db_admin, order_id)
    down = build_app(stripe_settings(settings, localstripe, stripe_api_base=f"http://127.0.0.1:{free_port()}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=down), base_url="http://payments") as http:
        body = await gql(http, REFUND, {"p": str(row["id"]), "a": "40"}, token_for("ADMIN"))
    assert body["data"]["refundPayment"]["status"] == "PENDING"  # not guessed, and counted against the rest
    await service.reconcile_once(resources.session_factory, worker_providers(resources), idle_for=timedelta(0),
                                 limit=10)
    assert [r.amount for r in sdk.v1.refunds.list(params={"payment_intent": row["provider_reference"]}).data
            ] == [4000]
    after = await payment(db_admin, order_id)
    assert (after["status"], after["refunded_amount"]) == ("PARTIALLY_REFUNDED", Decimal("40.00"))


async def test_the_next_action_is_shown_while_the_shopper_must_act(deliver_stripe, payments_app, db_admin, sdk,
                                                                   token_for, order_id) -> None:
    row, _intent = await _open_stripe_payment(deliver_stripe, db_admin, sdk, order_id)
    view = await gql(payments_app, PAYMENT, {"r": [{"__typename": "Order", "id": str(order_id)}]}, token_for())
    shown = view["data"]["_entities"][0]["payment"]
    assert shown["status"] == "REQUIRES_ACTION" and shown["capturedAmount"] is None
    assert shown["nextAction"] == {"type": "use_stripe_sdk", "clientSecret": row["client_secret"],
                                   "redirectUrl": None}


async def test_a_refund_made_in_stripes_dashboard_is_recorded_from_charge_refunded(
        deliver_stripe, payments_app, db_admin, sdk, order_id) -> None:
    row = await paid(deliver_stripe, db_admin, order_id)
    intent = sdk.v1.payment_intents.retrieve(row["provider_reference"])
    charge = intent.latest_charge.to_dict()  # localstripe expands it

    async def deliver_charge_refunded(event_id: str, refunded_cents: int) -> int:
        event = {"id": event_id, "object": "event", "type": "charge.refunded", "created": int(time.time()),
                 "data": {"object": charge | {"amount_refunded": refunded_cents, "refunded": False}}}
        body, signature = signed(event)
        answer = await payments_app.post("/webhooks/stripe", content=body, headers={"stripe-signature": signature})
        return answer.status_code

    # when Stripe reports 25.00 refunded outside NexusCart, twice (a redelivery), then an older event (0 refunded)
    assert [await deliver_charge_refunded("evt_dash", 2500), await deliver_charge_refunded("evt_dash", 2500),
            await deliver_charge_refunded("evt_older", 0)] == [200, 200, 200]
    # then one refund of 25.00 is recorded, and orders is told once
    after = await payment(db_admin, order_id)
    assert (after["status"], after["refunded_amount"]) == ("PARTIALLY_REFUNDED", Decimal("25.00"))
    assert await db_admin.fetch("SELECT amount, reason, status FROM payments.refunds") == [
        (Decimal("25.00"), "refunded_at_provider", "SUCCEEDED")]
    assert [e["payload"]["amount"] for e in await outbox(db_admin) if e["topic"] == "payment.refunded"] == ["25.00"]
