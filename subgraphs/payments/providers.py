"""Payment providers: one interface shaped like Stripe's PaymentIntents, a registry by name, and the
built-in `simulated` provider.

Why the interface looks like this: a Stripe adapter must drop in without touching the saga. Stripe
creates a PaymentIntent and confirms it (`charge`), refunds a captured intent (`refund`) and cancels an
intent that has not succeeded (`cancel`); every call carries an `Idempotency-Key`, and the answer is one
of succeeded / requires_payment_method (declined) / processing. `ProviderResult` is that answer.

Expected business outcomes (a declined card, a pending intent) are results, never exceptions.
Exceptions (`ProviderError`) are for requests the provider refuses as malformed (a reused idempotency
key with other parameters, a bad amount) or cannot answer (network): the event consumer retries them
and finally parks the event on the DLQ, because guessing an outcome for money is worse than stopping.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

import orjson
from redis.asyncio import Redis

from kernel.redis import lua_script
from kernel.settings import Settings


class ProviderStatus(str, enum.Enum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PROCESSING = "PROCESSING"  # the provider has not decided (yet); the saga's timeout acts if it never does


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderResult:
    status: ProviderStatus
    reference: str | None  # the provider's id of the intent (charge) or refund; None if it never created one
    failure_reason: str | None = None  # provider decline code, e.g. "card_declined"


class ProviderError(Exception):
    """The provider refused or could not answer the request (no outcome is known)."""


class IdempotencyKeyReused(ProviderError):
    """Like Stripe's `idempotency_error`: the key was first used with different parameters."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used with different parameters")
        self.key = key


class InvalidProviderRequest(ProviderError):
    """Like Stripe's `invalid_request_error`: e.g. a non-positive amount or more than 2 decimal places."""


@runtime_checkable
class PaymentProvider(Protocol):
    name: str

    async def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, token: str,
                     metadata: Mapping[str, str]) -> ProviderResult:
        """Create and confirm a payment for `amount` with the client's payment `token`."""
        ...

    async def refund(self, *, idempotency_key: str, reference: str, amount: Decimal) -> ProviderResult:
        """Refund `amount` of the succeeded charge `reference`."""
        ...

    async def cancel(self, *, idempotency_key: str, reference: str) -> ProviderResult:
        """Cancel the not-yet-succeeded charge `reference` (SUCCEEDED means: it is cancelled now)."""
        ...


# ---- registry ---------------------------------------------------------------------------------------------

ProviderFactory = Callable[[Settings, Redis], PaymentProvider]
_FACTORIES: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """A provider module (e.g. a future `stripe.py`) registers itself under the name settings use."""
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


def build_providers(settings: Settings, redis: Redis) -> dict[str, PaymentProvider]:
    """One instance of every accepted provider, by name."""
    return {name: _FACTORIES[name](settings, redis) for name in sorted(accepted_providers(settings))}


# ---- the simulated provider --------------------------------------------------------------------------------

# Outcomes of Stripe's test tokens (https://docs.stripe.com/testing): the same token names, so client code
# and manual tests written against the simulator keep working against Stripe's test mode.
_TOKEN_OUTCOMES: dict[str, tuple[ProviderStatus, str | None]] = {
    "tok_visa": (ProviderStatus.SUCCEEDED, None),
    "tok_mastercard": (ProviderStatus.SUCCEEDED, None),
    "tok_chargeDeclined": (ProviderStatus.FAILED, "card_declined"),
    "tok_chargeDeclinedInsufficientFunds": (ProviderStatus.FAILED, "insufficient_funds"),
    "tok_timeout": (ProviderStatus.PROCESSING, None),  # the provider "never answers"
}

# Stripe keeps idempotency keys for 24 hours; the simulator keeps them a week, far longer than any saga
# retry, so a late redelivery still gets the first answer instead of a second charge.
IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600

# One atomic step per provider call, so two concurrent calls with one key can never both act:
# KEYS[1] idempotency record, KEYS[2] charge record, KEYS[3] ledger.
# ARGV[1] request fingerprint, ARGV[2] ttl, ARGV[3] operation, then per operation:
#   charge: status, reference, failure_reason, amount_cents, currency
#   refund: refund reference, amount_cents
#   cancel: (nothing)
# Returns {replayed(0|1), stored record json}. The caller compares fingerprints of a replay.
_CALL_LUA = """
local stored = redis.call('GET', KEYS[1])
if stored then return {1, stored} end
local op = ARGV[3]
local status, reference, reason = 'FAILED', false, false
if op == 'charge' then
  status, reference, reason = ARGV[4], ARGV[5], ARGV[6]
  if reason == '' then reason = false end
  redis.call('HSET', KEYS[2], 'status', status, 'amount_cents', ARGV[7], 'refunded_cents', 0, 'currency', ARGV[8])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
else
  local charge_status = redis.call('HGET', KEYS[2], 'status')
  if not charge_status then
    reason = 'resource_missing'
  elseif op == 'refund' then
    local left = tonumber(redis.call('HGET', KEYS[2], 'amount_cents'))
               - tonumber(redis.call('HGET', KEYS[2], 'refunded_cents'))
    if charge_status ~= 'SUCCEEDED' then
      reason = 'charge_not_succeeded'
    elseif tonumber(ARGV[5]) > left then
      reason = 'amount_too_large'
    else
      redis.call('HINCRBY', KEYS[2], 'refunded_cents', ARGV[5])
      status, reference = 'SUCCEEDED', ARGV[4]
    end
  else -- cancel: only an intent that has not succeeded can be cancelled (as in Stripe)
    if charge_status == 'SUCCEEDED' then
      reason = 'payment_intent_unexpected_state'
    else
      redis.call('HSET', KEYS[2], 'status', 'CANCELLED')
      status = 'SUCCEEDED'
      reference = ARGV[4]
    end
  end
end
local record = cjson.encode({fingerprint = ARGV[1], status = status, reference = reference,
                             failure_reason = reason})
redis.call('SET', KEYS[1], record, 'EX', ARGV[2])
redis.call('RPUSH', KEYS[3], cjson.encode({operation = op, idempotency_key = KEYS[1], status = status}))
return {0, record}
"""

LEDGER_KEY = "payments:simulated:ledger"


def _cents(amount: Decimal) -> int:
    try:
        cents = Decimal(amount) * 100
    except (InvalidOperation, TypeError) as exc:
        raise InvalidProviderRequest(f"amount {amount!r} is not a number") from exc
    if not cents.is_finite() or cents <= 0 or cents != cents.to_integral_value():
        raise InvalidProviderRequest(f"amount {amount!r} must be positive with at most 2 decimal places")
    return int(cents)


class SimulatedProvider:
    """Behaves like Stripe test mode, with its state in Redis so every worker process agrees.

    Keys: payments:simulated:idem:<key> (first answer per idempotency key), payments:simulated:charge:<ref>
    (status, amount and refunded amount of a charge), payments:simulated:ledger (one entry per call that
    acted, i.e. not per replay: the "bank statement" that shows whether anything was charged twice).
    """

    name = "simulated"

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, token: str,
                     metadata: Mapping[str, str]) -> ProviderResult:
        cents = _cents(amount)
        status, reason = _TOKEN_OUTCOMES.get(token, (ProviderStatus.FAILED, "invalid_token"))
        reference = f"pi_sim_{uuid.uuid4().hex}"
        fingerprint = ["charge", cents, currency, token, sorted(metadata.items())]
        return await self._call(idempotency_key, fingerprint, "charge", reference,
                                [status.value, reference, reason or "", cents, currency])

    async def refund(self, *, idempotency_key: str, reference: str, amount: Decimal) -> ProviderResult:
        cents = _cents(amount)
        return await self._call(idempotency_key, ["refund", reference, cents], "refund", reference,
                                [f"re_sim_{uuid.uuid4().hex}", cents])

    async def cancel(self, *, idempotency_key: str, reference: str) -> ProviderResult:
        return await self._call(idempotency_key, ["cancel", reference], "cancel", reference, [reference])

    async def ledger(self) -> list[dict[str, Any]]:
        """Every call that acted, oldest first (for tests and the demo)."""
        return [orjson.loads(e) for e in await self.redis.lrange(LEDGER_KEY, 0, -1)]

    async def _call(self, idempotency_key: str, fingerprint: list[Any], operation: str, charge_reference: str,
                    args: list[Any]) -> ProviderResult:
        # Only a digest is stored (for a week): the fingerprint of a charge holds the client's payment token,
        # which must not outlive the charge it was given for.
        fp = hashlib.sha256(orjson.dumps(fingerprint)).hexdigest()
        script = lua_script(self.redis, _CALL_LUA)
        replayed, raw = await script(
            keys=[f"payments:simulated:idem:{idempotency_key}", f"payments:simulated:charge:{charge_reference}",
                  LEDGER_KEY],
            args=[fp, IDEMPOTENCY_TTL_SECONDS, operation, *args], client=self.redis)
        record = orjson.loads(raw)
        if replayed and record["fingerprint"] != fp:
            raise IdempotencyKeyReused(idempotency_key)
        # cjson encodes Lua `false` as JSON false: normalise to None.
        return ProviderResult(status=ProviderStatus(record["status"]), reference=record["reference"] or None,
                              failure_reason=record["failure_reason"] or None)


register_provider("simulated", lambda _settings, redis: SimulatedProvider(redis))
