"""Events of the payments domain (contract: docs/commerce-spine.md).

Emitted via the outbox (service.py), keyed by order id so one order's events stay ordered:
  payment.successful  {order_id, payment_id, amount, currency, provider}
  payment.failed      {order_id, payment_id, reason}
  payment.refunded    {order_id, payment_id, amount, currency}
Ids are strings, amounts decimal strings with 2 places.

Consumed by the `payments` consumer group (inbox in schema `payments`):
  order.confirmed  {order_id, user_id, amount, currency, payment: {provider, token}}  -> charge
  order.cancelled  {order_id, user_id, reason, previous_status, items}               -> refund / cancel / tombstone
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, EventHandler, WorkerResources
from kernel.events import EventEnvelope
from subgraphs.payments import service
from subgraphs.payments.errors import MalformedEvent
from subgraphs.payments.models import SCHEMA
from subgraphs.payments.providers import PaymentProvider, build_providers

EMITTED = ("payment.successful", "payment.failed", "payment.refunded")
CONSUMED = ("order.confirmed", "order.cancelled")
CONSUMER_GROUP = "payments"
# `resources.extras[PROVIDERS_EXTRA]` may hold a prepared {name: provider} mapping (tests, or a worker that
# wants to share provider clients); otherwise providers are built from settings and the worker's Redis.
PROVIDERS_EXTRA = "payment_providers"


def _id(event_type: str, payload: Mapping[str, Any], field: str) -> int:
    try:
        value = int(payload[field])
    except (KeyError, TypeError, ValueError):
        raise MalformedEvent(event_type, f"'{field}' is not an id") from None
    if not 0 < value < 1 << 63:
        raise MalformedEvent(event_type, f"'{field}' is not an id")
    return value


def _text(event_type: str, payload: Mapping[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(event_type, f"'{field}' is missing")
    return value


def handler_for(providers: Mapping[str, PaymentProvider]) -> EventHandler:
    """The one dispatching handler of the `payments` group; it runs inside the consumer's transaction."""

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        event_type, payload = envelope.event_type, envelope.payload
        if event_type == "order.confirmed":
            payment = payload.get("payment")
            if not isinstance(payment, Mapping):
                raise MalformedEvent(event_type, "'payment' is missing")
            try:
                amount = Decimal(_text(event_type, payload, "amount"))
            except InvalidOperation:
                raise MalformedEvent(event_type, "'amount' is not a decimal") from None
            await service.charge_order(
                session, providers, order_id=_id(event_type, payload, "order_id"),
                user_id=_id(event_type, payload, "user_id"), amount=amount,
                currency=_text(event_type, payload, "currency"),
                provider=_text(event_type, payment, "provider"), token=_text(event_type, payment, "token"))
        elif event_type == "order.cancelled":
            await service.cancel_order_payment(session, providers, order_id=_id(event_type, payload, "order_id"),
                                               user_id=_id(event_type, payload, "user_id"))
        # Any other type on these topics (a newer event version, a stray producer) is not ours to act on;
        # the inbox records it as seen and the group moves on.

    return handle


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    providers = resources.extras.get(PROVIDERS_EXTRA) or build_providers(resources.settings, resources.redis)
    # One event per transaction: a charge is made at the provider before its payment row commits. In a batch
    # rolled back for another event's failure, the charged order's row vanishes while the money stays captured,
    # and a concurrent order.cancelled (waiting on that row) would then leave a tombstone: never refunded.
    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, topics=CONSUMED, handler=handler_for(providers),
                         transaction_batch=1)]
