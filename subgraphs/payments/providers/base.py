"""The payment provider interface (shaped like Stripe's PaymentIntents) and the registry of providers by name.

Why the interface looks like this: the saga must not care which gateway moves the money. A provider creates
and confirms a payment (`charge`), tells what became of one (`retrieve`), refunds part or all of a captured
one (`refund`, `find_refund`) and cancels one that has not succeeded (`cancel`); every call that acts carries
an idempotency key derived from the payment (or the refund), and the answer is a `ProviderResult`.

Expected business outcomes (a declined card, a pending intent, a 3-D Secure step) are results, never
exceptions. `ProviderError` is for requests the provider refuses as malformed (a reused idempotency key with
other parameters, a bad amount): the event consumer retries them and finally parks the event on the DLQ,
because guessing an outcome for money is worse than stopping. A provider that cannot be reached answers
PROCESSING (nothing is known yet) and the reconciler asks again later.

Adding a provider: one module in this package that implements `PaymentProvider` and calls
`register_provider(name, factory)`, plus its import in `providers/__init__.py`.
"""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

from redis.asyncio import Redis

from kernel.settings import Settings


class ProviderStatus(str, enum.Enum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PROCESSING = "PROCESSING"            # the provider has not decided (yet), or could not be reached
    REQUIRES_ACTION = "REQUIRES_ACTION"  # the shopper must act first (3-D Secure): see `next_action`


@dataclasses.dataclass(frozen=True, slots=True)
class NextAction:
    """What the shopper's client must do before the provider decides (Stripe's `next_action`)."""
    type: str
    client_secret: str | None = None
    redirect_url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderResult:
    status: ProviderStatus
    reference: str | None  # the provider's id of the intent (charge) or refund; None if it never created one
    failure_reason: str | None = None  # provider decline code, e.g. "card_declined"
    next_action: NextAction | None = None  # with REQUIRES_ACTION


class ProviderError(Exception):
    """The provider refused the request as malformed (no outcome is known)."""


class IdempotencyKeyReused(ProviderError):
    """Like Stripe's `idempotency_error`: the key was first used with different parameters."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used with different parameters")
        self.key = key


class InvalidProviderRequest(ProviderError):
    """Like Stripe's `invalid_request_error`: e.g. a non-positive amount or more than 2 decimal places."""


# Called by a provider that creates an intent before confirming it (Stripe), with the intent's id, before the
# money can move: the caller commits it, so a crash after the confirmation still finds the intent by id.
ReferenceRecorder = Callable[[str], Awaitable[None]]


@runtime_checkable
class PaymentProvider(Protocol):
    name: str

    async def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, token: str,
                     metadata: Mapping[str, str], reference: str | None = None,
                     record_reference: ReferenceRecorder | None = None) -> ProviderResult:
        """Create and confirm a payment for `amount` with the client's payment `token`. With `reference` (an
        intent created by an earlier attempt of this charge), continue that intent instead of creating one."""
        ...

    async def retrieve(self, *, reference: str) -> ProviderResult:
        """What became of the charge `reference` (PROCESSING when the provider cannot be reached)."""
        ...

    async def refund(self, *, idempotency_key: str, reference: str, amount: Decimal,
                     metadata: Mapping[str, str]) -> ProviderResult:
        """Refund `amount` of the succeeded charge `reference`."""
        ...

    async def find_refund(self, *, reference: str, refund_id: str) -> ProviderResult | None:
        """The refund of charge `reference` whose metadata names `refund_id`, or None when the provider has none
        (for a provider that honours idempotency keys, None: asking again with the same key is the lookup)."""
        ...

    async def cancel(self, *, idempotency_key: str, reference: str) -> ProviderResult:
        """Cancel the not-yet-succeeded charge `reference` (SUCCEEDED means: it is cancelled now)."""
        ...


def to_cents(amount: Decimal) -> int:
    """Minor units of a 2-place amount (what Stripe's API takes)."""
    try:
        cents = Decimal(amount) * 100
    except (InvalidOperation, TypeError) as exc:
        raise InvalidProviderRequest(f"amount {amount!r} is not a number") from exc
    if not cents.is_finite() or cents <= 0 or cents != cents.to_integral_value():
        raise InvalidProviderRequest(f"amount {amount!r} must be positive with at most 2 decimal places")
    return int(cents)


# ---- registry ---------------------------------------------------------------------------------------------

ProviderFactory = Callable[[Settings, Redis], PaymentProvider]
_FACTORIES: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """A provider module registers itself under the name `PAYMENT_PROVIDERS` and `paymentMethod.provider` use."""
    _FACTORIES[name] = factory


def accepted_providers(settings: Settings) -> frozenset[str]:
    """Provider names checkout accepts (`PAYMENT_PROVIDERS`, comma-separated). An unknown name is a
    deployment mistake, so it fails loudly instead of letting orders accept payments nobody can charge."""
    names = frozenset(n.strip().lower() for n in settings.payment_providers.split(",") if n.strip())
    unknown = names - _FACTORIES.keys()
    if unknown:
        raise ValueError(f"PAYMENT_PROVIDERS names unknown provider(s) {sorted(unknown)}; "
                         f"known: {sorted(_FACTORIES)}")
    return names


class Providers(dict[str, PaymentProvider]):
    """The accepted providers of one process, by name; closes their HTTP clients when the process stops."""

    async def aclose(self) -> None:
        for provider in self.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()


def build_providers(settings: Settings, redis: Redis) -> Providers:
    """One instance of every accepted provider, by name."""
    return Providers({name: _FACTORIES[name](settings, redis) for name in sorted(accepted_providers(settings))})


# The key of a process's providers in its resources' `extras` (an app's or the worker's). Tests may put a
# prepared {name: provider} mapping there.
PROVIDERS_EXTRA = "payment_providers"


def shared_providers(extras: dict[str, Any], settings: Settings, redis: Redis) -> Mapping[str, PaymentProvider]:
    """The process's one set of provider clients, built on first use and kept in `extras` (the app closes what
    it keeps there when it stops)."""
    providers: Mapping[str, PaymentProvider] | None = extras.get(PROVIDERS_EXTRA)
    if providers is None:
        providers = extras[PROVIDERS_EXTRA] = build_providers(settings, redis)
    return providers
