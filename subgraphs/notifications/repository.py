"""All SQL of the notifications domain, as SQLAlchemy Core on the tables of models.py."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, any_, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of, rowcount
from subgraphs.notifications.models import (
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryStatus,
    NotificationRecord,
    WebhookDeliveryRecord,
    WebhookStatus,
    WebhookSubscriptionRecord,
    deliveries,
    early_order_events,
    flash_sale_reminders,
    flash_sales,
    notifications,
    order_facts,
    preferences,
    recipients,
    webhook_deliveries,
    webhook_subscriptions,
)

_NOTIFICATION_COLUMNS = (notifications.c.id, notifications.c.user_id, notifications.c.kind, notifications.c.category,
                         notifications.c.title, notifications.c.body, notifications.c.order_id, notifications.c.link,
                         notifications.c.read_at, notifications.c.created_at)


def _notification(row: Any) -> NotificationRecord:
    return NotificationRecord(**{c.name: row._mapping[c.name] for c in _NOTIFICATION_COLUMNS})


def _delivery(row: Any) -> DeliveryRecord:
    m = row._mapping
    return DeliveryRecord(id=m["id"], notification_id=m["notification_id"], event_id=str(m["event_id"]),
                          channel=m["channel"], recipient=m["recipient"], address=m["address"], status=m["status"],
                          subject=m["subject"], text_body=m["text_body"], html_body=m["html_body"],
                          marketing=m["marketing"], attempts=m["attempts"])


def _webhook_delivery(row: Any) -> WebhookDeliveryRecord:
    m = row._mapping
    return WebhookDeliveryRecord(id=m["id"], subscription_id=m["subscription_id"], event_id=str(m["event_id"]),
                                 event_type=m["event_type"], body=bytes(m["body"]), status=m["status"],
                                 attempts=m["attempts"], last_status_code=m["last_status_code"],
                                 last_error=m["last_error"], delivered_at=m["delivered_at"],
                                 created_at=m["created_at"])


# ---- what other domains told us -------------------------------------------------------------------------------

async def upsert_recipient(session: AsyncSession, user_id: int, email: str, roles: list[str], now: datetime) -> None:
    statement = insert(recipients).values(user_id=user_id, email=email, roles=roles, updated_at=now)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[recipients.c.user_id],
        set_={"email": statement.excluded.email, "roles": statement.excluded.roles, "updated_at": now}))


async def emails_of(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, str]:
    rows = await session.execute(select(recipients.c.user_id, recipients.c.email)
                                 .where(any_of(recipients.c.user_id, user_ids)))
    return {r.user_id: r.email for r in rows}


async def admin_ids(session: AsyncSession) -> list[int]:
    rows = await session.execute(select(recipients.c.user_id).where(literal("ADMIN") == any_(recipients.c.roles))
                                 .order_by(recipients.c.user_id))
    return [r.user_id for r in rows]


async def insert_order_facts(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(order_facts).values(**values).on_conflict_do_nothing())


async def get_order_facts(session: AsyncSession, order_id: int) -> dict[str, Any] | None:
    row = (await session.execute(select(order_facts).where(order_facts.c.order_id == order_id))).first()
    return dict(row._mapping) if row is not None else None


async def hold_early_event(session: AsyncSession, *, event_id: uuid.UUID, order_id: int, envelope: bytes,
                           now: datetime) -> None:
    await session.execute(insert(early_order_events).values(
        event_id=event_id, order_id=order_id, envelope=envelope, received_at=now).on_conflict_do_nothing())


async def take_early_events(session: AsyncSession, order_ids: Sequence[int] | None = None) -> list[bytes]:
    """Removes and returns (oldest first) the held events whose order is known now: of these orders, or of any.
    Two transactions never both take one (the second waits on the first's delete, then finds nothing)."""
    statement = (delete(early_order_events)
                 .where(early_order_events.c.order_id == order_facts.c.order_id)
                 .returning(early_order_events.c.envelope, early_order_events.c.received_at))
    if order_ids is not None:
        statement = statement.where(any_of(early_order_events.c.order_id, order_ids))
    rows = (await session.execute(statement)).all()
    return [row.envelope for row in sorted(rows, key=lambda row: row.received_at)]


async def drop_early_events(session: AsyncSession, *, received_before: datetime) -> int:
    """Held events whose order.placed never came: nobody is told of them."""
    return rowcount(await session.execute(
        delete(early_order_events).where(early_order_events.c.received_at < received_before)))


# ---- notifications and the send ledger ------------------------------------------------------------------------

async def insert_notification(session: AsyncSession, values: dict[str, Any]) -> NotificationRecord | None:
    """The new row; None when this (event, user, kind) already has one."""
    row = (await session.execute(insert(notifications).values(**values).on_conflict_do_nothing()
                                 .returning(*_NOTIFICATION_COLUMNS))).first()
    return _notification(row) if row is not None else None


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[int]:
    """The ids of the rows written (one statement for a notification's channels); a row that exists is left."""
    if not rows:
        return set()
    result = await session.execute(insert(deliveries).on_conflict_do_nothing().returning(deliveries.c.id),
                                   list(rows))
    return {r.id for r in result}


async def notification_page(session: AsyncSession, user_id: int, *, limit: int, before_id: int | None,
                            unread_only: bool) -> list[NotificationRecord]:
    query = select(*_NOTIFICATION_COLUMNS).where(notifications.c.user_id == user_id, notifications.c.in_app)
    if unread_only:
        query = query.where(notifications.c.read_at.is_(None))
    if before_id is not None:
        query = query.where(notifications.c.id < before_id)
    rows = await session.execute(query.order_by(notifications.c.id.desc()).limit(limit))
    return [_notification(r) for r in rows]


async def count_notifications(session: AsyncSession, user_id: int, *, unread_only: bool) -> int:
    query = select(func.count()).select_from(notifications).where(notifications.c.user_id == user_id,
                                                                  notifications.c.in_app)
    if unread_only:
        query = query.where(notifications.c.read_at.is_(None))
    return int((await session.execute(query)).scalar_one())


async def get_notification(session: AsyncSession, notification_id: int) -> NotificationRecord | None:
    row = (await session.execute(select(*_NOTIFICATION_COLUMNS).where(notifications.c.id == notification_id,
                                                                      notifications.c.in_app))).first()
    return _notification(row) if row is not None else None


async def mark_read(session: AsyncSession, notification_id: int, now: datetime) -> NotificationRecord:
    row = (await session.execute(
        update(notifications).where(notifications.c.id == notification_id)
        .values(read_at=func.coalesce(notifications.c.read_at, now)).returning(*_NOTIFICATION_COLUMNS))).one()
    return _notification(row)


async def mark_all_read(session: AsyncSession, user_id: int, now: datetime) -> int:
    result = await session.execute(update(notifications).where(
        notifications.c.user_id == user_id, notifications.c.in_app, notifications.c.read_at.is_(None))
        .values(read_at=now).returning(notifications.c.id))
    return len(result.all())


async def delivery_statuses(session: AsyncSession, notification_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    rows = await session.execute(select(deliveries.c.notification_id, deliveries.c.channel, deliveries.c.status)
                                 .where(any_of(deliveries.c.notification_id, notification_ids)))
    found: dict[int, dict[str, str]] = {}
    for r in rows:
        found.setdefault(r.notification_id, {})[r.channel] = r.status
    return found


def _claimable(now: datetime) -> Any:
    return and_(deliveries.c.status == DeliveryStatus.PENDING.value,
                or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now))


async def claim_deliveries(session: AsyncSession, *, now: datetime, lease: timedelta, ids: Sequence[int] | None = None,
                           limit: int = 100) -> list[DeliveryRecord]:
    """Leases PENDING rows (the given ones, or those due) to this sender until now + lease: another sender skips
    them until then, so a row is never sent by two at once; a sender that dies loses its lease."""
    query = select(deliveries.c.id).where(_claimable(now))
    if ids is not None:
        query = query.where(any_of(deliveries.c.id, ids))
    else:
        query = query.where(deliveries.c.next_attempt_at <= now)
    query = query.order_by(deliveries.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    rows = await session.execute(update(deliveries).where(deliveries.c.id.in_(query.scalar_subquery()))
                                 .values(claimed_until=now + lease).returning(*deliveries.c))
    return [_delivery(r) for r in rows]


async def finish_deliveries(session: AsyncSession, outcomes: Sequence[DeliveryOutcome]) -> None:
    """Record the outcome of each leased row's send; a row no longer PENDING (finished by someone else) is left
    as it is."""
    for outcome in outcomes:
        values: dict[str, Any] = {"status": outcome.status, "attempts": deliveries.c.attempts + 1,
                                  "claimed_until": None, "last_error": outcome.error}
        if outcome.status == DeliveryStatus.SENT.value:
            values["sent_at"] = outcome.at
        if outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at
        await session.execute(update(deliveries).where(deliveries.c.id == outcome.delivery_id,
                                                       deliveries.c.status == DeliveryStatus.PENDING.value)
                              .values(**values))


# ---- preferences ----------------------------------------------------------------------------------------------

async def preferences_of(session: AsyncSession, user_ids: Sequence[int]) -> dict[tuple[int, str, str], bool]:
    rows = await session.execute(select(preferences).where(any_of(preferences.c.user_id, user_ids)))
    return {(r.user_id, r.category, r.channel): r.enabled for r in rows}


async def set_preference(session: AsyncSession, user_id: int, category: str, channel: str, enabled: bool,
                         now: datetime) -> None:
    statement = insert(preferences).values(user_id=user_id, category=category, channel=channel, enabled=enabled,
                                           updated_at=now)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[preferences.c.user_id, preferences.c.category, preferences.c.channel],
        set_={"enabled": enabled, "updated_at": now}))


# ---- flash sales ----------------------------------------------------------------------------------------------

async def upsert_flash_sale(session: AsyncSession, sale_id: int, variant_id: int, starts_at: datetime,
                            ends_at: datetime) -> None:
    statement = insert(flash_sales).values(sale_id=sale_id, variant_id=variant_id, starts_at=starts_at,
                                           ends_at=ends_at)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[flash_sales.c.sale_id], set_={"starts_at": starts_at, "ends_at": ends_at},
        where=flash_sales.c.announced_at.is_(None)))


async def get_flash_sale(session: AsyncSession, sale_id: int) -> dict[str, Any] | None:
    row = (await session.execute(select(flash_sales).where(flash_sales.c.sale_id == sale_id))).first()
    return dict(row._mapping) if row is not None else None


async def add_reminder(session: AsyncSession, sale_id: int, user_id: int, now: datetime) -> None:
    await session.execute(insert(flash_sale_reminders).values(sale_id=sale_id, user_id=user_id, created_at=now)
                          .on_conflict_do_nothing())


async def claim_due_sales(session: AsyncSession, *, starts_before: datetime, now: datetime) -> list[dict[str, Any]]:
    """Sales starting before `starts_before` and not announced yet, marked announced (in the caller's transaction,
    with the notifications it writes), each once: rows another job holds are skipped."""
    due = (select(flash_sales.c.sale_id).where(flash_sales.c.announced_at.is_(None),
                                               flash_sales.c.starts_at <= starts_before,
                                               flash_sales.c.ends_at > now)
           .with_for_update(skip_locked=True).limit(50))
    rows = await session.execute(update(flash_sales).where(flash_sales.c.sale_id.in_(due.scalar_subquery()))
                                 .values(announced_at=now).returning(*flash_sales.c))
    return [dict(r._mapping) for r in rows]


async def reminder_user_ids(session: AsyncSession, sale_id: int) -> list[int]:
    rows = await session.execute(select(flash_sale_reminders.c.user_id)
                                 .where(flash_sale_reminders.c.sale_id == sale_id)
                                 .order_by(flash_sale_reminders.c.user_id))
    return [r.user_id for r in rows]


# ---- webhooks -------------------------------------------------------------------------------------------------

async def insert_webhook_subscription(session: AsyncSession, values: dict[str, Any]) -> WebhookSubscriptionRecord:
    row = (await session.execute(insert(webhook_subscriptions).values(**values)
                                 .returning(*webhook_subscriptions.c))).one()
    return WebhookSubscriptionRecord(**dict(row._mapping))


async def subscriptions_for(session: AsyncSession, event_type: str) -> list[WebhookSubscriptionRecord]:
    rows = await session.execute(select(webhook_subscriptions).where(
        webhook_subscriptions.c.active, literal(event_type) == any_(webhook_subscriptions.c.event_types)))
    return [WebhookSubscriptionRecord(**dict(r._mapping)) for r in rows]


async def get_webhook_subscriptions(session: AsyncSession,
                                    ids: Sequence[int]) -> dict[int, WebhookSubscriptionRecord]:
    rows = await session.execute(select(webhook_subscriptions).where(any_of(webhook_subscriptions.c.id, ids)))
    return {r.id: WebhookSubscriptionRecord(**dict(r._mapping)) for r in rows}


async def insert_webhook_delivery(session: AsyncSession, *, delivery_id: int, subscription_id: int,
                                  event_id: uuid.UUID, event_type: str, body: bytes, now: datetime) -> int | None:
    row = (await session.execute(insert(webhook_deliveries).values(
        id=delivery_id, subscription_id=subscription_id, event_id=event_id, event_type=event_type, body=body,
        status=WebhookStatus.PENDING.value, attempts=0, next_attempt_at=now, created_at=now)
        .on_conflict_do_nothing().returning(webhook_deliveries.c.id))).first()
    return row.id if row is not None else None


async def claim_webhook_deliveries(session: AsyncSession, *, now: datetime, lease: timedelta,
                                   ids: Sequence[int] | None = None, limit: int = 50) -> list[WebhookDeliveryRecord]:
    query = select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.status == WebhookStatus.PENDING.value,
        or_(webhook_deliveries.c.claimed_until.is_(None), webhook_deliveries.c.claimed_until < now))
    if ids is not None:
        query = query.where(any_of(webhook_deliveries.c.id, ids))
    else:
        query = query.where(webhook_deliveries.c.next_attempt_at <= now)
    query = query.order_by(webhook_deliveries.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    rows = await session.execute(update(webhook_deliveries)
                                 .where(webhook_deliveries.c.id.in_(query.scalar_subquery()))
                                 .values(claimed_until=now + lease).returning(*webhook_deliveries.c))
    return [_webhook_delivery(r) for r in rows]


async def finish_webhook_delivery(session: AsyncSession, delivery_id: int, *, status: str, now: datetime,
                                  status_code: int | None, error: str | None,
                                  next_attempt_at: datetime | None) -> None:
    values: dict[str, Any] = {"status": status, "attempts": webhook_deliveries.c.attempts + 1,
                              "claimed_until": None, "last_status_code": status_code, "last_error": error}
    if status == WebhookStatus.DELIVERED.value:
        values["delivered_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    await session.execute(update(webhook_deliveries).where(
        webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.status == WebhookStatus.PENDING.value)
        .values(**values))


async def webhook_delivery_page(session: AsyncSession, subscription_id: int, limit: int) -> list[WebhookDeliveryRecord]:
    rows = await session.execute(select(webhook_deliveries)
                                 .where(webhook_deliveries.c.subscription_id == subscription_id)
                                 .order_by(webhook_deliveries.c.id.desc()).limit(limit))
    return [_webhook_delivery(r) for r in rows]
