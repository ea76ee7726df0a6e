"""Provider notifications over HTTP (not GraphQL): `POST /webhooks/stripe` on the payments service.

Stripe signs every request (`Stripe-Signature`, HMAC-SHA256 with `STRIPE_WEBHOOK_SECRET` over the timestamp and
the raw body); an unsigned, badly signed or stale (over 300 s) request is answered 400 and changes nothing.
Stripe delivers at least once and in any order, so each event is recorded in the payments inbox in the same
transaction as its effect (a redelivery changes nothing), and applied by state: an event about an intent the
payment has moved past (a payment_failed after the success) changes nothing either. `charge.refunded` records
what was refunded outside NexusCart (Stripe's dashboard). Answering 2xx only after the commit makes Stripe retry
what failed.
"""
from __future__ import annotations

import logging
from decimal import Decimal

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kernel.graphql import ServiceResources
from kernel.ids import as_id
from kernel.uow import unit_of_work
from subgraphs.payments import repository, service
from subgraphs.payments.providers.stripe import field, intent_result, verify_webhook

log = logging.getLogger("nexuscart.payments.webhooks")

INBOX_CONSUMER = "stripe-webhooks"
# The PaymentIntent events that can decide (or describe) a charge; others are acknowledged and ignored.
INTENT_EVENTS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
                           "payment_intent.requires_action", "payment_intent.processing"})


async def stripe_webhook(request: Request) -> Response:
    resources: ServiceResources = request.app.state.resources
    body = await request.body()
    try:
        event = verify_webhook(body, request.headers.get("stripe-signature"),
                               resources.settings.stripe_webhook_secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        log.warning("stripe webhook refused", extra={"error": type(exc).__name__})
        return JSONResponse({"error": "invalid signature"}, status_code=400)
    async with unit_of_work(resources.session_factory) as session:
        if not await repository.record_notification(session, INBOX_CONSUMER, event.id):
            return JSONResponse({"received": True, "duplicate": True})
        if event.type in INTENT_EVENTS:
            intent = event.data.object
            payment = await service.apply_provider_update(
                session, payment_id=as_id(field(field(intent, "metadata"), "payment_id")), reference=str(intent["id"]),
                result=intent_result(intent))
            if payment is None:
                log.info("stripe event about an intent that is not ours", extra={"event_type": event.type})
        elif event.type == "charge.refunded":
            charge = event.data.object
            intent_id = field(charge, "payment_intent")
            if intent_id:
                await service.apply_provider_refunds(
                    session, payment_id=as_id(field(field(charge, "metadata"), "payment_id")),
                    reference=str(field(intent_id, "id") or intent_id),
                    provider_refunded=Decimal(int(field(charge, "amount_refunded") or 0)) / 100)
    return JSONResponse({"received": True})


ROUTES = [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]
