"""The simulated provider against real Redis: Stripe test-token outcomes and idempotency keys."""
from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from kernel.settings import Settings
from subgraphs.payments.providers import (
    IdempotencyKeyReused,
    InvalidProviderRequest,
    PaymentProvider,
    ProviderStatus,
    SimulatedProvider,
    accepted_providers,
    build_providers,
)


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def charge(provider: SimulatedProvider, token: str, *, idempotency_key: str | None = None,
                 amount: str = "10.00"):
    return await provider.charge(idempotency_key=idempotency_key or key(), amount=Decimal(amount), currency="USD",
                                 token=token, metadata={"order_id": "1"})


@pytest.mark.parametrize(("token", "status", "reason"), [
    ("tok_visa", ProviderStatus.SUCCEEDED, None),
    ("tok_mastercard", ProviderStatus.SUCCEEDED, None),
    ("tok_chargeDeclined", ProviderStatus.FAILED, "card_declined"),
    ("tok_chargeDeclinedInsufficientFunds", ProviderStatus.FAILED, "insufficient_funds"),
    ("tok_timeout", ProviderStatus.PROCESSING, None),
    ("tok_made_up", ProviderStatus.FAILED, "invalid_token"),
])
async def test_each_test_token_has_its_stripe_outcome(provider, token, status, reason) -> None:
    result = await charge(provider, token)
    assert (result.status, result.failure_reason) == (status, reason)
    assert result.reference and result.reference.startswith("pi_sim_")


async def test_a_repeated_key_charges_once_and_answers_the_same(provider) -> None:
    # given a charge that succeeded
    k = key()
    first = await charge(provider, "tok_visa", idempotency_key=k)
    # when the caller retries with the same key (e.g. its commit failed after the call)
    again = await charge(provider, "tok_visa", idempotency_key=k)
    # then it gets the first answer, and the provider acted once
    assert again == first
    assert [e["operation"] for e in await provider.ledger()] == ["charge"]


async def test_concurrent_calls_with_one_key_charge_once(provider) -> None:
    k = key()
    results = await asyncio.gather(*(charge(provider, "tok_visa", idempotency_key=k) for _ in range(10)))
    assert len({r.reference for r in results}) == 1
    assert len(await provider.ledger()) == 1


async def test_a_reused_key_with_other_parameters_is_refused(provider) -> None:
    k = key()
    await charge(provider, "tok_visa", idempotency_key=k, amount="10.00")
    with pytest.raises(IdempotencyKeyReused):
        await charge(provider, "tok_visa", idempotency_key=k, amount="11.00")
    with pytest.raises(IdempotencyKeyReused):
        await charge(provider, "tok_mastercard", idempotency_key=k, amount="10.00")
    assert len(await provider.ledger()) == 1


@pytest.mark.parametrize("amount", ["0", "-1.00", "1.001", "NaN"])
async def test_malformed_amounts_are_refused(provider, amount) -> None:
    with pytest.raises(InvalidProviderRequest):
        await charge(provider, "tok_visa", amount=amount)
    assert await provider.ledger() == []


async def test_refund_of_a_captured_charge_once_and_never_more_than_captured(provider) -> None:
    captured = await charge(provider, "tok_visa", amount="30.00")
    k = key()
    refunded = await provider.refund(idempotency_key=k, reference=captured.reference, amount=Decimal("30.00"))
    assert refunded.status is ProviderStatus.SUCCEEDED and refunded.reference.startswith("re_sim_")
    assert await provider.refund(idempotency_key=k, reference=captured.reference, amount=Decimal("30.00")) == refunded
    # a second refund under a new key finds nothing left to give back
    over = await provider.refund(idempotency_key=key(), reference=captured.reference, amount=Decimal("0.01"))
    assert (over.status, over.failure_reason) == (ProviderStatus.FAILED, "amount_too_large")


async def test_refund_needs_a_succeeded_charge(provider) -> None:
    declined = await charge(provider, "tok_chargeDeclined")
    result = await provider.refund(idempotency_key=key(), reference=declined.reference, amount=Decimal("10.00"))
    assert (result.status, result.failure_reason) == (ProviderStatus.FAILED, "charge_not_succeeded")
    missing = await provider.refund(idempotency_key=key(), reference="pi_sim_nope", amount=Decimal("1.00"))
    assert (missing.status, missing.failure_reason) == (ProviderStatus.FAILED, "resource_missing")


async def test_cancel_closes_a_processing_intent_but_not_a_succeeded_one(provider) -> None:
    pending = await charge(provider, "tok_timeout")
    cancelled = await provider.cancel(idempotency_key=key(), reference=pending.reference)
    assert cancelled.status is ProviderStatus.SUCCEEDED
    # a cancelled intent can no longer be refunded: nothing was captured
    refund = await provider.refund(idempotency_key=key(), reference=pending.reference, amount=Decimal("10.00"))
    assert refund.status is ProviderStatus.FAILED

    captured = await charge(provider, "tok_visa")
    refused = await provider.cancel(idempotency_key=key(), reference=captured.reference)
    assert (refused.status, refused.failure_reason) == (ProviderStatus.FAILED, "payment_intent_unexpected_state")


def test_accepted_providers_come_from_settings() -> None:
    assert accepted_providers(Settings(payment_providers="simulated")) == frozenset({"simulated"})
    assert accepted_providers(Settings(payment_providers=" Simulated , ")) == frozenset({"simulated"})
    assert accepted_providers(Settings(payment_providers="")) == frozenset()
    assert accepted_providers(Settings(payment_providers="simulated,stripe")) == frozenset({"simulated", "stripe"})
    with pytest.raises(ValueError, match="paypal"):
        accepted_providers(Settings(payment_providers="simulated,paypal"))


def test_stripe_without_an_api_key_fails_at_start_up(redis) -> None:
    with pytest.raises(ValueError, match="STRIPE_API_KEY"):
        build_providers(Settings(payment_providers="stripe", stripe_api_key=""), redis)


async def test_the_registry_builds_each_accepted_provider(redis) -> None:
    providers = build_providers(Settings(payment_providers="simulated"), redis)
    assert list(providers) == ["simulated"]
    assert isinstance(providers["simulated"], PaymentProvider)


async def test_the_payment_token_is_not_kept_in_redis_after_the_charge(provider, redis) -> None:
    # given a charge made with the client's token (the idempotency record lives a week)
    idempotency_key = key()
    await charge(provider, "tok_mastercard", idempotency_key=idempotency_key)
    # then nothing the simulator stores holds the token, yet a replay is still recognised as the same request
    stored = [await redis.get(k) if await redis.type(k) == b"string" else str(await redis.hgetall(k)).encode()
              async for k in redis.scan_iter(match="payments:simulated:*") if await redis.type(k) != b"list"]
    assert stored and not any(b"tok_mastercard" in (v or b"") for v in stored)
    replay = await charge(provider, "tok_mastercard", idempotency_key=idempotency_key)
    assert replay.status is ProviderStatus.SUCCEEDED
    with pytest.raises(IdempotencyKeyReused):
        await charge(provider, "tok_visa", idempotency_key=idempotency_key)
