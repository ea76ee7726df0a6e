"""Sending what the ledger holds: email, SMS and push rows of `deliveries`, and partner webhook deliveries.

Each send is three steps: lease the rows (one short transaction for up to ten), send, record the outcomes
(another). The lease keeps two senders (the after-commit send and the retry job, or two workers) from sending
one row at once; a sender that dies mid-send loses its lease and the retry job sends the row again. So a row is
sent once unless a process dies after the provider accepted it and before the outcome is recorded: at-least-once
at the transport, with a Message-ID (email) or Idempotency-Key (SMS, push) derived from the ledger key so the
receiver can drop that duplicate. Failures are retried with exponential backoff, then parked (FAILED / PARKED)."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
from cryptography.exceptions import InvalidTag
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.settings import Settings
from kernel.uow import unit_of_work
from subgraphs.notifications import channels, keys, repository
from subgraphs.notifications.models import (
    Category,
    Channel,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryStatus,
    WebhookStatus,
)

log = logging.getLogger("nexuscart.notifications")

SIGNATURE_HEADER = "NexusCart-Signature"
_BACKOFF_CAP = timedelta(hours=6)
# Ledger rows leased at a time: the lease (NOTIFICATIONS_SEND_LEASE_SECONDS) must outlast sending them one after
# another, each within SMTP_TIMEOUT.
SEND_LEASE_ROWS = 10


@dataclasses.dataclass(frozen=True)
class Deps:
    """What sending needs: the worker's (or a subgraph's) settings, session factory and Redis client."""
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff(base_seconds: float, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failure: base, 2 x base, 4 x base, ... capped at 6 h."""
    return min(_BACKOFF_CAP, timedelta(seconds=base_seconds * 2 ** max(0, attempts - 1)))


def unsubscribe_url(settings: Settings, key: bytes, user_id: int) -> str:
    token = keys.unsubscribe_token(key, user_id, Category.MARKETING.value)
    return f"{settings.notifications_public_url.rstrip('/')}/unsubscribe?token={token}"


async def _send_one(deps: Deps, smtp: channels.SmtpSession, delivery: DeliveryRecord) -> None:
    settings = deps.settings
    if delivery.channel == Channel.EMAIL.value:
        link = (unsubscribe_url(settings, await keys.secret_key(deps.redis, settings), delivery.recipient)
                if delivery.marketing else None)
        await smtp.send(channels.build_email(settings, delivery, unsubscribe_url=link))
        return
    provider = channels.provider_for(settings, Channel(delivery.channel))
    if provider is None:
        raise channels.SendFailed(f"{delivery.channel} provider is no longer configured")
    await provider.send(user_id=delivery.recipient, title=delivery.subject, text=delivery.text_body,
                        idempotency_key=channels.message_id(delivery.event_id, delivery.channel,
                                                            delivery.recipient).strip("<>"))


async def send_deliveries(deps: Deps, ids: Sequence[int] | None = None) -> int:
    """Send the given PENDING ledger rows (after the commit that wrote them), or the due ones (the retry job: one
    lease's worth per run). Emails share one SMTP connection. Returns how many were sent."""
    settings = deps.settings
    lease = timedelta(seconds=settings.notifications_send_lease_seconds)
    # The given rows a lease's worth at a time; the retry job: one lease of whatever is due (None).
    chunks: list[Sequence[int] | None] = ([None] if ids is None else
                                          [ids[i:i + SEND_LEASE_ROWS] for i in range(0, len(ids), SEND_LEASE_ROWS)])
    sent = 0
    async with channels.SmtpSession(settings) as smtp:
        for chunk in chunks:
            async with unit_of_work(deps.session_factory) as session:
                claimed = await repository.claim_deliveries(session, now=utc_now(), lease=lease, ids=chunk,
                                                            limit=SEND_LEASE_ROWS)
            outcomes: list[DeliveryOutcome] = []
            for delivery in sorted(claimed, key=lambda d: d.id):  # as written (ids grow): the claim has no order
                error: str | None = None
                try:
                    await _send_one(deps, smtp, delivery)
                except channels.SendFailed as exc:
                    error = str(exc)[:500]
                outcomes.append(_outcome(settings, delivery, error))
                sent += error is None
            if outcomes:
                async with unit_of_work(deps.session_factory) as session:
                    await repository.finish_deliveries(session, outcomes)
    return sent


def _outcome(settings: Settings, delivery: DeliveryRecord, error: str | None) -> DeliveryOutcome:
    attempts = delivery.attempts + 1
    now = utc_now()
    if error is None:
        return DeliveryOutcome(delivery.id, DeliveryStatus.SENT.value, now, None, None)
    if attempts >= settings.notifications_send_max_attempts:
        log.error("notification send failed; parked", extra={"delivery_id": delivery.id, "error": error})
        return DeliveryOutcome(delivery.id, DeliveryStatus.FAILED.value, now, error, None)
    log.warning("notification send failed; will retry", extra={"delivery_id": delivery.id, "error": error})
    return DeliveryOutcome(delivery.id, DeliveryStatus.PENDING.value, now, error,
                           now + backoff(settings.notifications_retry_interval_seconds, attempts))


async def deliver_webhooks(deps: Deps, ids: Sequence[int] | None = None) -> int:
    """POST the given PENDING webhook deliveries (after the commit that wrote them), or every due one (the retry
    job), signed with their subscription's secret. Returns how many were accepted (any 2xx)."""
    settings = deps.settings
    timeout = settings.notifications_webhook_timeout_seconds
    async with unit_of_work(deps.session_factory) as session:
        claimed = await repository.claim_webhook_deliveries(session, now=utc_now(),
                                                            lease=timedelta(seconds=timeout * 3), ids=ids)
        subscription_ids = sorted({d.subscription_id for d in claimed})
        subscriptions = await repository.get_webhook_subscriptions(session, subscription_ids)
    if not claimed:
        return 0
    key = await keys.secret_key(deps.redis, settings)
    accepted = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        for delivery in claimed:
            subscription = subscriptions[delivery.subscription_id]
            status_code: int | None = None
            error: str | None = None
            try:
                secret = keys.decrypt_secret(key, subscription.secret_encrypted)
                signature = keys.webhook_signature(secret, int(time.time()), delivery.body)
                async with http.post(subscription.url, data=delivery.body, allow_redirects=False, headers={
                        "content-type": "application/json", SIGNATURE_HEADER: signature,
                        "NexusCart-Event-Id": delivery.event_id, "NexusCart-Event-Type": delivery.event_type,
                        "user-agent": "NexusCart-Webhooks/1"}) as response:
                    status_code = response.status
                    if not 200 <= response.status < 300:
                        error = f"HTTP {response.status}"
            except InvalidTag:
                error = "the signing secret cannot be decrypted (NOTIFICATIONS_SECRET_KEY changed)"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error = type(exc).__name__
            attempts = delivery.attempts + 1
            now = utc_now()
            if error is None:
                outcome, retry_at = WebhookStatus.DELIVERED.value, None
                accepted += 1
            elif attempts >= settings.notifications_webhook_max_attempts:
                outcome, retry_at = WebhookStatus.PARKED.value, None
                log.error("webhook delivery parked", extra={"delivery_id": delivery.id, "error": error})
            else:
                outcome = WebhookStatus.PENDING.value
                retry_at = now + backoff(settings.notifications_webhook_backoff_seconds, attempts)
            async with unit_of_work(deps.session_factory) as session:
                await repository.finish_webhook_delivery(session, delivery.id, status=outcome, now=now,
                                                         status_code=status_code, error=error,
                                                         next_attempt_at=retry_at)
    return accepted
