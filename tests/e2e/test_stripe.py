"""Stripe end to end, through the router and real processes, against localstripe (a stateful fake Stripe server
this module starts): paid, declined, 3-D Secure passed and failed, webhooks signed and replayed, partial and full
refunds, Stripe unreachable during the charge, and a worker killed between the charge and its commit.

The shared `platform` runs with its own localstripe (as `make run` does) and the Stripe settings of
tests/conftest.py (E2E_STRIPE_ENV), so nothing is restarted for this module.
Waits poll a condition with a deadline, never a fixed sleep.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import stripe

from nexuscart.localstripe import LocalStripe, start_localstripe
from tests.conftest import E2E_STRIPE_ENV
from tests.e2e.test_commerce import ADD_TO_CART, ADDRESS, eventually, stocked_variant

WEBHOOK_SECRET = E2E_STRIPE_ENV["STRIPE_WEBHOOK_SECRET"]
THREE_D_SECURE_CARD = "4000002500003155"

ORDER = """query($id: ID!) { order(id: $id) { id status statusHistory { status reason }
  payment { id status provider failureReason amount { amount } capturedAmount { amount } refundedAmount { amount }
            nextAction { type clientSecret redirectUrl } refunds { amount { amount } status reason } } } }"""
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }"""
CONFIRM = """mutation($id: ID!) { confirmPayment(orderId: $id) { id status payment { status failureReason } } }"""
REFUND = """mutation($p: ID!, $a: String, $r: String) { refundPayment(paymentId: $p, amount: $a, reason: $r) {
  id amount { amount currency } status reason } }"""


def _health_url(platform: Any, name: str) -> str:
    if name.startswith("worker-"):
        return str(platform.worker_health_urls[name])
    return f"http://127.0.0.1:{platform.config.subgraph_ports[name]}/health"


@pytest.fixture(scope="module")
def localstripe(platform: Any) -> LocalStripe:
    """The platform's own localstripe (tests/conftest.py starts the shared platform with it, as `make run` does),
    its webhook registered with the tests' secret."""
    assert platform.local_stripe is not None, "the shared platform runs without localstripe"
    return platform.local_stripe


def _webhook_url(platform: Any) -> str:
    return f"http://127.0.0.1:{platform.config.subgraph_ports['payments']}/webhooks/stripe"


@pytest.fixture
def sdk(localstripe: LocalStripe) -> stripe.StripeClient:
    """The test's own view of the fake Stripe (what an operator sees in the dashboard)."""
    return stripe.StripeClient(localstripe.api_key, base_addresses={"api": localstripe.url})


@pytest.fixture
async def shop(router, make_user) -> dict[str, Any]:
    """An admin, a customer, and a variant with stock the customer can put in a cart."""
    _, admin = await make_user("ADMIN")
    customer_id, customer = await make_user()
    _, variant = await stocked_variant(router, admin, 50, price="40.00")
    return {"admin": admin, "customer": customer, "customer_id": customer_id, "variant": variant}


async def checkout(router, shop: dict[str, Any], token: str, quantity: int = 1) -> str:
    await router.ok(ADD_TO_CART, {"cartId": None, "v": shop["variant"], "q": quantity}, shop["customer"])
    placed = await router.ok(PLACE, {"input": {"shippingAddress": ADDRESS, "idempotencyKey": uuid.uuid4().hex,
                                               "paymentMethod": {"provider": "stripe", "token": token}}},
                             shop["customer"])
    return str(placed["placeOrder"]["id"])


async def order_of(router, token: str, order_id: str) -> dict[str, Any]:
    return dict((await router.ok(ORDER, {"id": order_id}, token))["order"])


async def until(router, token: str, order_id: str, check, what: str, within: float = 40) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        order = await order_of(router, token, order_id)
        return order if check(order) else None

    return await eventually(probe, within=within, what=what)


def _status(*statuses: str):
    return lambda order: order["status"] in statuses


def _payment_status(*statuses: str):
    return lambda order: order["payment"] is not None and order["payment"]["status"] in statuses


def three_d_secure_card(sdk: stripe.StripeClient) -> str:
    return sdk.v1.payment_methods.create(params={"type": "card", "card": {
        "number": THREE_D_SECURE_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id


def intents_for_order(sdk: stripe.StripeClient, order_id: str) -> list[Any]:
    return [i for i in sdk.v1.payment_intents.list(params={"limit": 100}).data
            if i.metadata.to_dict().get("order_id") == order_id]


async def authenticate(localstripe: LocalStripe, intent_id: str, client_secret: str, *, success: bool) -> None:
    """What Stripe.js does when the shopper passes (or fails) 3-D Secure: localstripe's own endpoint for it."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{localstripe.url}/v1/payment_intents/{intent_id}/_authenticate", data={
            "client_secret": client_secret, "success": "true" if success else "false", "key": "pk_test_x"})
    answer.raise_for_status()


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET) -> str:
    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def history(order: dict[str, Any]) -> list[str]:
    return [h["status"] for h in order["statusHistory"]]


# ---- charges ------------------------------------------------------------------------------------------------

async def test_a_stripe_card_pays_the_order(router, shop, localstripe, sdk) -> None:
    order_id = await checkout(router, shop, "pm_card_visa", quantity=2)
    order = await until(router, shop["customer"], order_id, _status("PAID"), "the order to be paid")
    payment = order["payment"]
    assert (payment["status"], payment["provider"], payment["amount"], payment["capturedAmount"]) == (
        "SUCCEEDED", "stripe", {"amount": "80.00"}, {"amount": "80.00"})
    [intent] = intents_for_order(sdk, order_id)
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 8000, "usd")


async def test_a_declined_card_cancels_the_order_with_stripes_reason(router, shop, localstripe) -> None:
    order_id = await checkout(router, shop, "pm_card_chargeCustomerFail")
    order = await until(router, shop["customer"], order_id, _status("CANCELLED"), "the order to be cancelled")
    assert order["payment"]["status"] == "FAILED" and order["payment"]["failureReason"] == "card_declined"
    assert order["statusHistory"][-1] == {"status": "CANCELLED", "reason": "PAYMENT_DECLINED"}


@pytest.mark.parametrize("token", ["tok_visa", "card_4242", "pm_", "pm_card visa"])
async def test_a_token_that_is_not_a_payment_method_id_is_refused(router, shop, localstripe, token) -> None:
    await router.ok(ADD_TO_CART, {"cartId": None, "v": shop["variant"], "q": 1}, shop["customer"])
    body = await router.raw(PLACE, {"input": {"shippingAddress": ADDRESS, "idempotencyKey": uuid.uuid4().hex,
                                              "paymentMethod": {"provider": "stripe", "token": token}}},
                            shop["customer"])
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_unknown_provider_is_refused(router, shop, localstripe) -> None:
    await router.ok(ADD_TO_CART, {"cartId": None, "v": shop["variant"], "q": 1}, shop["customer"])
    body = await router.raw(PLACE, {"input": {"shippingAddress": ADDRESS, "idempotencyKey": uuid.uuid4().hex,
                                              "paymentMethod": {"provider": "paypal", "token": "pm_card_visa"}}},
                            shop["customer"])
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_three_d_secure_passed_pays_the_order(router, shop, localstripe, sdk) -> None:
    # given a card that needs 3-D Secure: the order waits, and the client sees what to do
    order_id = await checkout(router, shop, three_d_secure_card(sdk))
    order = await until(router, shop["customer"], order_id, _payment_status("REQUIRES_ACTION"),
                        "the payment to require action")
    assert order["status"] == "AWAITING_PAYMENT"
    action = order["payment"]["nextAction"]
    assert action["type"] == "use_stripe_sdk" and action["clientSecret"].startswith("pi_")
    [intent] = intents_for_order(sdk, order_id)
    # when the shopper passes it and the client confirms
    await authenticate(localstripe, intent.id, action["clientSecret"], success=True)
    confirmed = (await router.ok(CONFIRM, {"id": order_id}, shop["customer"]))["confirmPayment"]
    assert confirmed["payment"]["status"] == "SUCCEEDED"
    # then the saga pays the order
    paid = await until(router, shop["customer"], order_id, _status("PAID"), "the order to be paid")
    assert paid["payment"]["nextAction"] is None


async def test_three_d_secure_failed_cancels_the_order(router, shop, localstripe, sdk) -> None:
    order_id = await checkout(router, shop, three_d_secure_card(sdk))
    order = await until(router, shop["customer"], order_id, _payment_status("REQUIRES_ACTION"),
                        "the payment to require action")
    [intent] = intents_for_order(sdk, order_id)
    await authenticate(localstripe, intent.id, order["payment"]["nextAction"]["clientSecret"], success=False)
    await router.ok(CONFIRM, {"id": order_id}, shop["customer"])
    cancelled = await until(router, shop["customer"], order_id, _status("CANCELLED"), "the order to be cancelled")
    assert cancelled["payment"]["failureReason"] == "payment_intent_authentication_failure"


async def test_confirm_payment_of_another_users_order_is_forbidden(router, shop, localstripe, make_user) -> None:
    order_id = await checkout(router, shop, "pm_card_visa")
    await until(router, shop["customer"], order_id, _status("PAID"), "the order to be paid")
    _, stranger = await make_user()
    assert await router.error_code(CONFIRM, {"id": order_id}, stranger) == "FORBIDDEN"


# ---- webhooks -----------------------------------------------------------------------------------------------

async def test_localstripes_signed_webhook_pays_the_order_and_five_replays_change_nothing(
        router, shop, localstripe, sdk, platform) -> None:
    # given an order waiting for 3-D Secure, which the shopper passes; no confirmPayment: Stripe's webhook tells
    order_id = await checkout(router, shop, three_d_secure_card(sdk))
    order = await until(router, shop["customer"], order_id, _payment_status("REQUIRES_ACTION"),
                        "the payment to require action")
    [intent] = intents_for_order(sdk, order_id)
    await authenticate(localstripe, intent.id, order["payment"]["nextAction"]["clientSecret"], success=True)
    await until(router, shop["customer"], order_id, _status("PAID"), "the webhook to pay the order", within=20)
    # when that event is delivered again five times (Stripe sends at least once), freshly signed
    [event] = [e for e in sdk.v1.events.list(params={"type": "payment_intent.succeeded"}).data
               if e.data.object.id == intent.id]
    body = json_bytes(event.to_dict())
    async with httpx.AsyncClient() as http:
        answers = [await http.post(_webhook_url(platform), content=body, headers={"stripe-signature": signed(body)})
                   for _ in range(5)]
    # then each is acknowledged and the order was paid once
    assert [a.status_code for a in answers] == [200] * 5
    final = await order_of(router, shop["customer"], order_id)
    assert history(final).count("PAID") == 1 and final["status"] == "PAID"


async def test_a_webhook_with_a_bad_signature_is_refused(router, shop, localstripe, sdk, platform) -> None:
    order_id = await checkout(router, shop, three_d_secure_card(sdk))
    order = await until(router, shop["customer"], order_id, _payment_status("REQUIRES_ACTION"),
                        "the payment to require action")
    [intent] = intents_for_order(sdk, order_id)
    forged = {"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded", "created": int(time.time()),
              "data": {"object": intent.to_dict() | {"status": "succeeded"}}}
    body = json_bytes(forged)
    async with httpx.AsyncClient() as http:
        bad = await http.post(_webhook_url(platform), content=body,
                              headers={"stripe-signature": signed(body, secret="whsec_not_ours")})
        unsigned = await http.post(_webhook_url(platform), content=body)
    assert (bad.status_code, unsigned.status_code) == (400, 400)
    after = await order_of(router, shop["customer"], order_id)
    assert after["status"] == "AWAITING_PAYMENT" and after["payment"]["status"] == order["payment"]["status"]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


# ---- refunds ------------------------------------------------------------------------------------------------

async def test_partial_then_full_refund_and_an_over_refund_refused(router, shop, localstripe, sdk) -> None:
    order_id = await checkout(router, shop, "pm_card_visa", quantity=2)  # 80.00
    order = await until(router, shop["customer"], order_id, _status("PAID"), "the order to be paid")
    payment_id = order["payment"]["id"]
    admin = shop["admin"]
    # a customer (even the payer) cannot refund
    assert await router.error_code(REFUND, {"p": payment_id, "a": "10"}, shop["customer"]) == "FORBIDDEN"
    # a partial refund
    refund = (await router.ok(REFUND, {"p": payment_id, "a": "30", "r": "one item returned"}, admin))["refundPayment"]
    assert (refund["amount"], refund["status"]) == ({"amount": "30.00", "currency": "USD"}, "SUCCEEDED")
    order = await until(router, admin, order_id, _status("PARTIALLY_REFUNDED"), "a partially refunded order")
    assert order["payment"]["refundedAmount"] == {"amount": "30.00"}
    # more than the rest, nothing, or less than nothing: refused, nothing refunded
    for amount in ("50.01", "0", "-1"):
        assert await router.error_code(REFUND, {"p": payment_id, "a": amount}, admin) == "BAD_USER_INPUT"
    # the rest
    rest = (await router.ok(REFUND, {"p": payment_id}, admin))["refundPayment"]
    assert rest["amount"]["amount"] == "50.00"
    order = await until(router, admin, order_id, _status("REFUNDED"), "a refunded order")
    assert [(r["amount"]["amount"], r["status"]) for r in order["payment"]["refunds"]] == [
        ("30.00", "SUCCEEDED"), ("50.00", "SUCCEEDED")]
    [intent] = intents_for_order(sdk, order_id)
    assert sorted(r.amount for r in sdk.v1.refunds.list(params={"payment_intent": intent.id}).data) == [3000, 5000]


async def test_cancelling_a_paid_order_refunds_it_at_stripe(router, shop, localstripe, sdk) -> None:
    order_id = await checkout(router, shop, "pm_card_visa")
    await until(router, shop["customer"], order_id, _status("PAID"), "the order to be paid")
    await router.ok("mutation($id: ID!) { cancelOrder(id: $id) { id } }", {"id": order_id}, shop["customer"])
    order = await until(router, shop["customer"], order_id, _status("REFUNDED"), "a refunded order")
    assert order["payment"]["status"] == "REFUNDED"
    [intent] = intents_for_order(sdk, order_id)
    assert [r.amount for r in sdk.v1.refunds.list(params={"payment_intent": intent.id}).data] == [4000]


# ---- failures -----------------------------------------------------------------------------------------------

async def test_stripe_unreachable_during_the_charge_is_settled_by_the_reconciler(
        router, shop, localstripe, sdk, platform, db_admin: asyncpg.Pool) -> None:
    # given Stripe is down when the saga charges
    port = int(localstripe.url.rsplit(":", 1)[1])
    localstripe.stop()
    try:
        order_id = await checkout(router, shop, "pm_card_visa")
        order = await until(router, shop["customer"], order_id, _payment_status("PROCESSING"),
                            "the payment to be left processing")
        # then nothing is guessed: the order waits
        assert order["status"] == "AWAITING_PAYMENT"
    finally:
        # when Stripe is back (same address; it starts empty)
        back = start_localstripe(port=port)
        localstripe.process = back.process
        localstripe.register_webhook(_webhook_url(platform), WEBHOOK_SECRET)
    # then the reconciler resumes the charge and the order is paid, once
    try:
        await until(router, shop["customer"], order_id, _status("PAID"), "the reconciler to settle the payment")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n{await _reconciler_state(platform, db_admin, order_id)}") from None
    assert [i.status for i in intents_for_order(sdk, order_id)] == ["succeeded"]


async def _reconciler_state(platform: Any, db_admin: asyncpg.Pool, order_id: str) -> str:
    """What a failed wait for the reconciler needs to be understood: the workers' readiness (their periodic jobs
    start once joined), the open payments ahead in its queue, and the workers' last log lines."""
    lines = []
    async with httpx.AsyncClient(timeout=2) as http:
        for name, url in platform.worker_health_urls.items():
            try:
                ready = (await http.get(url.replace('/health', '/ready'))).json()
                waiting = {group: state for group, state in ready.get("groups", {}).items()
                           if state["assigned"] is None or state["partitions"] is None}
                health = (await http.get(url)).json()
                lines.append(f"{name} /ready: {ready['status']}, groups not joined: {waiting}; /health: {health}")
            except (httpx.HTTPError, ValueError) as exc:
                lines.append(f"{name} /ready: {exc!r}")
    rows = await db_admin.fetch("SELECT id, order_id, provider, status, updated_at FROM payments.payments "
                                "WHERE status IN ('PENDING', 'PROCESSING', 'REQUIRES_ACTION') ORDER BY updated_at")
    lines.append(f"open payments ({len(rows)}), ours is order {order_id}:")
    lines += [f"  {dict(r)}" for r in rows[:40]]
    for name in platform.worker_health_urls:
        log_file = platform.config.data_dir / "logs" / f"{name}.log"
        if log_file.exists():
            lines.append(f"--- last lines of {log_file}")
            lines += log_file.read_text(errors="replace").splitlines()[-40:]
    return "\n".join(lines)


async def test_a_worker_killed_between_the_charge_and_its_commit(router, shop, localstripe, sdk, platform,
                                                                 db_admin: asyncpg.Pool) -> None:
    # given the workers stall right after Stripe charged and before they record it (a table lock holds their
    # write), and Stripe's webhook cannot reach us (so only the workers' own recovery can settle the payment)
    localstripe.register_webhook("http://127.0.0.1:9/unreachable", WEBHOOK_SECRET)
    blocker = await db_admin.acquire()
    stalled = blocker.transaction()
    await stalled.start()
    killed = False
    try:
        await blocker.execute("LOCK TABLE payments.provider_calls IN EXCLUSIVE MODE")
        order_id = await checkout(router, shop, "pm_card_visa")

        async def charged_and_stalled() -> bool:
            succeeded = [i for i in intents_for_order(sdk, order_id) if i.status == "succeeded"]
            waiting = await db_admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE "
                "'%provider_calls%'")
            return bool(succeeded) and waiting > 0

        await eventually(charged_and_stalled, what="a worker to stall between the charge and its commit")
        # when both workers are killed there (no chance to commit), then started again
        for name in ("worker-1", "worker-2"):
            platform.kill(name)
        killed = True
    finally:
        await stalled.rollback()
        await db_admin.release(blocker)
        localstripe.register_webhook(_webhook_url(platform), WEBHOOK_SECRET)
        if killed:
            for name in ("worker-1", "worker-2"):
                platform.restart(name, _health_url(platform, name))
    # then the redelivered order.confirmed (or the reconciler) finds the charge, records it, and the order is paid
    order = await until(router, shop["customer"], order_id, _status("PAID"), "the recovered payment", within=90)
    assert history(order).count("PAID") == 1
    # and the card was charged exactly once
    assert [i.status for i in intents_for_order(sdk, order_id)] == ["succeeded"]
