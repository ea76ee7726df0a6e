"""The built-in `simulated` provider: Stripe's test tokens, with real idempotency, its state in Redis."""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from redis.asyncio import Redis

from kernel.redis import lua_script
from subgraphs.payments.providers.base import (
    IdempotencyKeyReused,
    ProviderResult,
    ProviderStatus,
    ReferenceRecorder,
    register_provider,
    to_cents,
)

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
  redis.call('HSET', KEYS[2], 'status', status, 'amount_cents', ARGV[7], 'refunded_cents', 0, 'currency', ARGV[8],
             'reason', ARGV[6])
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
                     metadata: Mapping[str, str], reference: str | None = None,
                     record_reference: ReferenceRecorder | None = None) -> ProviderResult:
        # The simulator keeps idempotency keys, so asking again with the same key is how a retried charge gets
        # the first answer. Like Stripe, it names its charge before it acts and hands the name over first: a
        # cancellation that finds a charge pending without an answer can then ask what became of it.
        cents = to_cents(amount)
        status, reason = _TOKEN_OUTCOMES.get(token, (ProviderStatus.FAILED, "invalid_token"))
        if reference is None:
            reference = f"pi_sim_{uuid.uuid4().hex}"
            if record_reference is not None:
                await record_reference(reference)
        fingerprint = ["charge", cents, currency, token, sorted(metadata.items())]
        return await self._call(idempotency_key, fingerprint, "charge", reference,
                                [status.value, reference, reason or "", cents, currency])

    async def retrieve(self, *, reference: str) -> ProviderResult:
        status, reason = await self.redis.hmget(f"payments:simulated:charge:{reference}", ["status", "reason"])
        if status is None:
            # Named, never made (the caller stopped between recording the name and the charge): nothing charged.
            return ProviderResult(ProviderStatus.FAILED, reference, "resource_missing")
        value = status.decode() if isinstance(status, bytes) else status
        if value == "CANCELLED":
            return ProviderResult(ProviderStatus.FAILED, reference, "canceled")
        decline = reason.decode() if isinstance(reason, bytes) else reason
        return ProviderResult(ProviderStatus(value), reference, decline or None)

    async def refund(self, *, idempotency_key: str, reference: str, amount: Decimal,
                     metadata: Mapping[str, str] | None = None) -> ProviderResult:
        cents = to_cents(amount)
        return await self._call(idempotency_key, ["refund", reference, cents], "refund", reference,
                                [f"re_sim_{uuid.uuid4().hex}", cents])

    async def find_refund(self, *, reference: str, refund_id: str) -> ProviderResult | None:
        return None  # idempotency keys are kept: refunding again with the refund's key replays the first answer

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
