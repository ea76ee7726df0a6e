"""The `stripe` provider: PaymentIntents through the official `stripe` SDK (async, over httpx).

A charge is two calls: create the PaymentIntent (unconfirmed: no money can move yet), hand its id to the caller
to commit, then confirm it. So once money may have moved, the payment row already names the intent, and a
retry, a webhook or the reconciler find it by id instead of charging again. That matters beyond Stripe's own
idempotency keys (sent on every call, derived from the payment): a key is kept by Stripe for 24 hours only,
and a test server such as localstripe ignores them altogether.

Network errors and 5xx answers are retried by the SDK with the same idempotency key
(`STRIPE_MAX_NETWORK_RETRIES`); after that the outcome is unknown, and the answer is PROCESSING, never a guess.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import stripe
from redis.asyncio import Redis

from kernel.settings import Settings
from subgraphs.payments.providers.base import (
    InvalidProviderRequest,
    NextAction,
    ProviderError,
    ProviderResult,
    ProviderStatus,
    ReferenceRecorder,
    register_provider,
    to_cents,
)

log = logging.getLogger("nexuscart.payments.stripe")

# Answers after which the outcome is unknown: the SDK has already retried them with the same key.
_UNREACHABLE = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)

S = ProviderStatus


def field(obj: Any, name: str) -> Any:
    """A field of a Stripe object (which is not a dict since SDK 15) or of a plain dict, None when absent."""
    if obj is None:
        return None
    try:
        return obj.get(name)
    except AttributeError:
        return getattr(obj, name, None)


def intent_result(intent: Any) -> ProviderResult:
    """A PaymentIntent (from an API answer or a webhook event) as a provider result."""
    status, reference = intent["status"], intent["id"]
    if status == "succeeded":
        return ProviderResult(S.SUCCEEDED, reference)
    if status in ("requires_action", "requires_source_action"):
        action = field(intent, "next_action")
        kind = str(field(action, "type") or "use_stripe_sdk")
        redirect = field(field(action, "redirect_to_url"), "url")
        return ProviderResult(S.REQUIRES_ACTION, reference, next_action=NextAction(
            type=kind, client_secret=field(intent, "client_secret"), redirect_url=redirect))
    if status == "requires_payment_method":
        # Declined, or 3-D Secure failed: the intent waits for another payment method, which this order will
        # not get (a new checkout is a new order).
        error = field(intent, "last_payment_error")
        reason = field(error, "decline_code") or field(error, "code") or "payment_failed"
        return ProviderResult(S.FAILED, reference, str(reason))
    if status == "canceled":
        return ProviderResult(S.FAILED, reference, str(field(intent, "cancellation_reason") or "canceled"))
    # processing, requires_capture (not used: capture is automatic), requires_confirmation (created, not confirmed)
    return ProviderResult(S.PROCESSING, reference)


def _refund_result(refund: Any) -> ProviderResult:
    status = refund["status"]
    if status == "succeeded":
        return ProviderResult(S.SUCCEEDED, refund["id"])
    if status in ("failed", "canceled"):
        return ProviderResult(S.FAILED, refund["id"], str(field(refund, "failure_reason") or status))
    return ProviderResult(S.PROCESSING, refund["id"])  # pending, requires_action


def _declined(exc: stripe.CardError, reference: str | None) -> ProviderResult:
    error = exc.error
    intent = error.payment_intent if error is not None else None
    reason = (error.decline_code if error is not None else None) or exc.code or "card_declined"
    return ProviderResult(S.FAILED, reference or (intent.id if intent is not None else None), reason)


class StripeProvider:
    name = "stripe"

    def __init__(self, settings: Settings) -> None:
        if not settings.stripe_api_key:
            raise ValueError("PAYMENT_PROVIDERS accepts 'stripe' but STRIPE_API_KEY is not set")
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self.client = stripe.StripeClient(
            settings.stripe_api_key, http_client=self._http,
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
            max_network_retries=settings.stripe_max_network_retries)

    async def aclose(self) -> None:
        await self._http.close_async()

    async def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, token: str,
                     metadata: Mapping[str, str], reference: str | None = None,
                     record_reference: ReferenceRecorder | None = None) -> ProviderResult:
        cents = to_cents(amount)
        intents = self.client.v1.payment_intents
        try:
            if reference is None:
                intent = await intents.create_async(
                    # Cards only: no redirect-based method can be picked, so Stripe needs no return_url, and a
                    # 3-D Secure step comes back as next_action for the client's Stripe.js.
                    params={"amount": cents, "currency": currency.lower(), "payment_method": token,
                            "payment_method_types": ["card"], "metadata": dict(metadata)},
                    options={"idempotency_key": f"{idempotency_key}:create"})
                reference = intent.id
                if record_reference is not None:
                    await record_reference(reference)
            else:
                intent = await intents.retrieve_async(reference)
            if intent.status == "requires_confirmation":
                intent = await intents.confirm_async(reference,
                                                     options={"idempotency_key": f"{idempotency_key}:confirm"})
        except stripe.CardError as exc:
            return _declined(exc, reference)
        except _UNREACHABLE as exc:
            log.warning("stripe unreachable during a charge; the reconciler asks again later",
                        extra={"error": type(exc).__name__, "reference": reference})
            return ProviderResult(S.PROCESSING, reference)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404 or exc.code == "resource_missing":
                # The client's PaymentMethod id names nothing: its card cannot pay, like a decline.
                return ProviderResult(S.FAILED, reference, "invalid_payment_method")
            raise InvalidProviderRequest(f"stripe refused the charge: {exc.code or exc.http_status}") from exc
        return intent_result(intent)

    async def retrieve(self, *, reference: str) -> ProviderResult:
        try:
            intent = await self.client.v1.payment_intents.retrieve_async(reference)
        except _UNREACHABLE:
            return ProviderResult(S.PROCESSING, reference)
        except stripe.InvalidRequestError as exc:
            raise ProviderError(f"stripe has no payment intent {reference!r}: {exc.code}") from exc
        return intent_result(intent)

    async def refund(self, *, idempotency_key: str, reference: str, amount: Decimal,
                     metadata: Mapping[str, str]) -> ProviderResult:
        cents = to_cents(amount)
        try:
            refund = await self.client.v1.refunds.create_async(
                params={"payment_intent": reference, "amount": cents, "metadata": dict(metadata)},
                options={"idempotency_key": idempotency_key})
        except _UNREACHABLE:
            return ProviderResult(S.PROCESSING, None)
        except stripe.InvalidRequestError as exc:
            return ProviderResult(S.FAILED, None, exc.code or "refund_refused")
        return _refund_result(refund)

    async def find_refund(self, *, reference: str, refund_id: str) -> ProviderResult | None:
        try:
            page = await self.client.v1.refunds.list_async(params={"payment_intent": reference, "limit": 100})
        except _UNREACHABLE:
            return ProviderResult(S.PROCESSING, None)
        for refund in page.data:
            if field(field(refund, "metadata"), "refund_id") == refund_id:
                return _refund_result(refund)
        return None

    async def cancel(self, *, idempotency_key: str, reference: str) -> ProviderResult:
        try:
            intent = await self.client.v1.payment_intents.cancel_async(
                reference, options={"idempotency_key": idempotency_key})
        except _UNREACHABLE:
            return ProviderResult(S.PROCESSING, reference)
        except stripe.InvalidRequestError as exc:
            return ProviderResult(S.FAILED, reference, exc.code or "payment_intent_unexpected_state")
        if intent.status == "canceled":
            return ProviderResult(S.SUCCEEDED, reference)
        return ProviderResult(S.FAILED, reference, "payment_intent_unexpected_state")


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> stripe.Event:
    """The event Stripe signed, or ValueError / stripe.SignatureVerificationError (unsigned, badly signed, or
    signed more than 300 s ago: a replayed capture)."""
    if not secret:
        raise ValueError("STRIPE_WEBHOOK_SECRET is not set")
    return stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)


def _build(settings: Settings, _redis: Redis) -> StripeProvider:
    return StripeProvider(settings)


register_provider("stripe", _build)
