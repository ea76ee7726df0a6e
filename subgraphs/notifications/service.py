"""Rules of the notifications domain: who is told what, on which channels, and the user's choices. No GraphQL and
no HTTP here.

Every notification is written in the transaction of what caused it (the consumed event's inbox transaction, or
the flash-sale job's): the in-app row, and one ledger row per other channel (`deliveries`, keyed by event,
channel and recipient) saying PENDING, or why nothing will be sent. After the commit the in-app notification is
published on the user's Redis channel and the PENDING rows are sent (delivery.py); the retry job sends those a
crash left behind. A redelivered event finds its rows and adds nothing.
"""
from __future__ import annotations

import dataclasses
import logging
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.events import EventEnvelope
from kernel.ids import next_id, parse_id
from kernel.money import format_money
from kernel.settings import Settings
from kernel.uow import after_commit, unit_of_work
from subgraphs.inventory.events import LowStock
from subgraphs.notifications import channels, delivery, keys, repository, templates
from subgraphs.notifications.delivery import Deps, utc_now
from subgraphs.notifications.errors import (
    FlashSaleAlreadyStarted,
    FlashSaleNotFound,
    InvalidNotificationInput,
    NotificationNotFound,
)
from subgraphs.notifications.models import (
    Category,
    Channel,
    DeliveryStatus,
    Kind,
    NotificationRecord,
    WebhookDeliveryRecord,
    WebhookSubscriptionRecord,
)
from subgraphs.orders.events import (
    OrderCancelled,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)
from subgraphs.payments.events import PaymentFailed, PaymentRefunded
from subgraphs.promotions.events import FlashSaleScheduled
from subgraphs.reviews.events import ReviewApproved
from subgraphs.users.events import UserRegistered

log = logging.getLogger("nexuscart.notifications")

ADMIN = "ADMIN"
# An event about an order this domain has no order.placed for is held this long (notified once it comes),
# then dropped.
ORDER_FACTS_WAIT = timedelta(minutes=10)
MAX_PAGE_SIZE = 100
# What a user gets without having chosen: SMS and push stay off until asked for (they cost and interrupt).
DEFAULTS: dict[tuple[Category, Channel], bool] = {
    (category, channel): channel in (Channel.EMAIL, Channel.IN_APP) for category in Category for channel in Channel}
# Transactional email cannot be turned off: it is how a shopper learns about their own orders and payments.
LOCKED: frozenset[tuple[Category, Channel]] = frozenset({(Category.TRANSACTIONAL, Channel.EMAIL)})
OUTBOUND = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
# Events partners may subscribe to with webhooks (user.registered is not among them: it carries an address).
WEBHOOK_EVENT_TYPES: tuple[str, ...] = tuple(t.topic for t in (
    OrderPlaced, OrderPaid, OrderShipped, OrderDelivered, OrderCancelled, PaymentFailed, PaymentRefunded,
    ReviewApproved, LowStock, FlashSaleScheduled))
_FLASH_SALE_EVENTS = uuid.UUID("6b1f3c1e-9a52-4a8e-9a0e-5f3e2b7c9d10")  # uuid5 namespace of flash-sale reminders
_CANCEL_REASONS = {"OUT_OF_STOCK": "an item ran out of stock", "PAYMENT_DECLINED": "the payment was declined",
                   "PAYMENT_TIMEOUT": "it was not paid in time", "CUSTOMER_CANCELLED": "you cancelled it"}


def channel_name(user_id: int) -> str:
    """The Redis channel of a user's live notifications (`notificationReceived`)."""
    return f"notifications:user:{user_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    kind: Kind
    category: Category
    context: dict[str, Any]
    order_id: int | None = None
    link: str | None = None


# ---- sending --------------------------------------------------------------------------------------------------

def _enabled(prefs: dict[tuple[int, str, str], bool], user_id: int, category: Category, channel: Channel) -> bool:
    if (category, channel) in LOCKED:
        return True
    return prefs.get((user_id, category.value, channel.value), DEFAULTS[(category, channel)])


async def notify(deps: Deps, session: AsyncSession, *, event_id: str, user_ids: Sequence[int],
                 message_for: Callable[[int], Message]) -> list[NotificationRecord]:
    """Write the notification of `event_id` for each user (the in-app row, and a ledger row per outbound channel)
    and queue, after the commit, its live push and the sends. A user already notified of this event is skipped.
    Returns the rows written."""
    settings = deps.settings
    users = list(dict.fromkeys(user_ids))
    if not users:
        return []
    emails = await repository.emails_of(session, users)
    prefs = await repository.preferences_of(session, users)
    key: bytes | None = None
    now = utc_now()
    event_uuid = uuid.UUID(event_id)
    written: list[NotificationRecord] = []
    pending: list[int] = []
    for user_id in users:
        message = message_for(user_id)
        link = None
        if message.category is Category.MARKETING:
            key = key or await keys.secret_key(deps.redis, settings)
            link = delivery.unsubscribe_url(settings, key, user_id)
        rendered = templates.render(message.kind, {**message.context, "unsubscribe_url": link})
        in_app = _enabled(prefs, user_id, message.category, Channel.IN_APP)
        row = await repository.insert_notification(session, {
            "id": next_id(), "user_id": user_id, "event_id": event_uuid, "kind": message.kind.value,
            "category": message.category.value, "title": rendered.subject, "body": rendered.summary,
            "order_id": message.order_id, "link": message.link, "in_app": in_app, "created_at": now})
        if row is None:
            continue  # this event was already turned into notifications for this user
        ledger: list[dict[str, Any]] = []
        for channel in OUTBOUND:
            address = emails.get(user_id) if channel is Channel.EMAIL else None
            if not channels.channel_available(settings, channel):
                status = DeliveryStatus.UNAVAILABLE
            elif not _enabled(prefs, user_id, message.category, channel):
                status = DeliveryStatus.DISABLED
            elif channel is Channel.EMAIL and address is None:
                status = DeliveryStatus.NO_ADDRESS
            else:
                status = DeliveryStatus.PENDING
            email = channel is Channel.EMAIL
            ledger.append({
                "id": next_id(), "notification_id": row.id, "event_id": event_uuid, "channel": channel.value,
                "recipient": user_id, "address": address, "status": status.value, "subject": rendered.subject,
                "text_body": rendered.text if email else rendered.summary,
                "html_body": rendered.html if email else None,
                "marketing": message.category is Category.MARKETING, "attempts": 0, "next_attempt_at": now,
                "created_at": now})
        written_ids = await repository.insert_deliveries(session, ledger)
        pending += [d["id"] for d in ledger
                    if d["id"] in written_ids and d["status"] == DeliveryStatus.PENDING.value]
        if in_app:
            written.append(row)

    outgoing = _outgoing(deps, session)
    outgoing.rows += written
    outgoing.deliveries += pending
    return written


@dataclasses.dataclass(slots=True)
class _Outgoing:
    """What a transaction's notifications push and send once it has committed, gathered over every event it
    applied: a consumer batch of twenty paid orders makes one Redis round trip for the live pushes and one send
    run (a lease per ten rows, one SMTP connection), not twenty of each."""
    rows: list[NotificationRecord] = dataclasses.field(default_factory=list)
    deliveries: list[int] = dataclasses.field(default_factory=list)


_OUTGOING = "notifications_outgoing"


def _outgoing(deps: Deps, session: AsyncSession) -> _Outgoing:
    outgoing: _Outgoing | None = session.info.get(_OUTGOING)
    if outgoing is None:
        outgoing = session.info[_OUTGOING] = _Outgoing()
        gathered = outgoing

        async def push_and_send() -> None:
            if gathered.rows:
                async with deps.redis.pipeline(transaction=False) as pipe:
                    for row in gathered.rows:
                        pipe.publish(channel_name(row.user_id), notification_message(row))
                    await pipe.execute()
            if gathered.deliveries:
                await delivery.send_deliveries(deps, gathered.deliveries)

        after_commit(session, push_and_send)
    return outgoing


def notification_message(row: NotificationRecord) -> bytes:
    return orjson.dumps({"id": str(row.id), "user_id": str(row.user_id), "kind": row.kind, "category": row.category,
                         "title": row.title, "body": row.body,
                         "order_id": str(row.order_id) if row.order_id is not None else None, "link": row.link,
                         "read_at": row.read_at.isoformat() if row.read_at else None,
                         "created_at": row.created_at.isoformat()})


def notification_from_message(data: bytes) -> NotificationRecord:
    message = orjson.loads(data)
    return NotificationRecord(
        id=int(message["id"]), user_id=int(message["user_id"]), kind=message["kind"], category=message["category"],
        title=message["title"], body=message["body"],
        order_id=int(message["order_id"]) if message["order_id"] is not None else None, link=message["link"],
        read_at=datetime.fromisoformat(message["read_at"]) if message["read_at"] else None,
        created_at=datetime.fromisoformat(message["created_at"]))


# ---- events ---------------------------------------------------------------------------------------------------

async def apply_user_registered(session: AsyncSession, user: UserRegistered) -> None:
    await repository.upsert_recipient(session, user.user_id, user.email, list(user.roles), utc_now())


def _order_url(settings: Settings, order_id: int) -> str:
    return f"{settings.notifications_shop_url.rstrip('/')}/orders/{order_id}"


def _order_context(settings: Settings, facts: dict[str, Any]) -> dict[str, Any]:
    return {"number": facts["number"], "currency": facts["currency"], "lines": facts["lines"],
            "subtotal": format_money(Decimal(facts["subtotal"])), "discount": format_money(Decimal(facts["discount"])),
            "total": format_money(Decimal(facts["total"])), "order_url": _order_url(settings, facts["order_id"])}


async def _facts_or_hold(session: AsyncSession, envelope: EventEnvelope, order_id: int) -> dict[str, Any] | None:
    """What order.placed said about the order. Unknown (order.placed travels on another topic and may be applied
    after this event): a recent event is held until it is (`notify_early_events`), an old one (its order.placed
    is older than anything this domain was given, e.g. on the first start) is dropped: nobody is told. Held, not
    retried: retries spent the consumer's attempts in seconds and parked the event on the DLQ, and held up every
    event behind it, while a backlog kept order.placed minutes away."""
    facts = await repository.get_order_facts(session, order_id)
    if facts is None:
        if utc_now() - datetime.fromisoformat(envelope.timestamp) < ORDER_FACTS_WAIT:
            await repository.hold_early_event(session, event_id=uuid.UUID(envelope.event_id), order_id=order_id,
                                              envelope=envelope.to_json(), now=utc_now())
        else:
            log.warning("event about an order never placed here; not notified",
                        extra={"event_id": envelope.event_id, "event_type": envelope.event_type})
    return facts


Replay = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]


async def notify_early_events(session: AsyncSession, replay: Replay, order_ids: Sequence[int] | None = None) -> int:
    """Notify the held events whose order is known now (of `order_ids`, or all of them), each through `replay`
    (its own handler), in the order they came; and drop those held longer than the wait. order.placed's handler
    calls it for its order; the retry job for all, which also catches an event held by a transaction that
    committed after order.placed's had looked. Returns how many were notified."""
    held = await repository.take_early_events(session, order_ids)
    for raw in held:
        await replay(session, EventEnvelope.from_json(raw))
    if order_ids is None and (dropped := await repository.drop_early_events(
            session, received_before=utc_now() - ORDER_FACTS_WAIT)):
        log.warning("events about orders never placed here; not notified", extra={"count": dropped})
    return len(held)


async def _notify_order(deps: Deps, session: AsyncSession, envelope: EventEnvelope, order_id: int, kind: Kind,
                        **extra: Any) -> None:
    facts = await _facts_or_hold(session, envelope, order_id)
    if facts is None:
        return
    context = {**_order_context(deps.settings, facts), **extra}
    await notify(deps, session, event_id=envelope.event_id, user_ids=[facts["user_id"]],
                 message_for=lambda _user: Message(kind, Category.TRANSACTIONAL, context, order_id=order_id,
                                                   link=context["order_url"]))


async def apply_order_placed(deps: Deps, session: AsyncSession, envelope: EventEnvelope, order: OrderPlaced) -> None:
    await repository.insert_order_facts(session, {
        "order_id": order.order_id, "user_id": order.user_id, "number": order.number, "currency": order.currency,
        "subtotal": order.subtotal, "discount": order.discount, "total": order.total, "placed_at": order.placed_at,
        "lines": [{"name": i.name, "sku": i.sku, "quantity": i.quantity, "unit_price": format_money(i.unit_price)}
                  for i in order.items]})
    await _notify_order(deps, session, envelope, order.order_id, Kind.ORDER_PLACED)


async def apply_order_paid(deps: Deps, session: AsyncSession, envelope: EventEnvelope, order: OrderPaid) -> None:
    await _notify_order(deps, session, envelope, order.order_id, Kind.ORDER_PAID)


async def apply_order_shipped(deps: Deps, session: AsyncSession, envelope: EventEnvelope,
                              order: OrderShipped) -> None:
    # order.shipped carries no tracking today: the templates show it whenever an event brings it.
    payload = envelope.payload
    await _notify_order(deps, session, envelope, order.order_id, Kind.ORDER_SHIPPED,
                        tracking_number=payload.get("tracking_number"), tracking_url=payload.get("tracking_url"))


async def apply_order_delivered(deps: Deps, session: AsyncSession, envelope: EventEnvelope,
                                order: OrderDelivered) -> None:
    await _notify_order(deps, session, envelope, order.order_id, Kind.ORDER_DELIVERED)


async def apply_order_cancelled(deps: Deps, session: AsyncSession, envelope: EventEnvelope,
                                order: OrderCancelled) -> None:
    await _notify_order(deps, session, envelope, order.order_id, Kind.ORDER_CANCELLED,
                        reason_text=_CANCEL_REASONS.get(order.reason, "it could not be completed"),
                        was_paid=order.previous_status in ("PAID", "SHIPPED"))


async def apply_payment_failed(deps: Deps, session: AsyncSession, envelope: EventEnvelope,
                               payment: PaymentFailed) -> None:
    await _notify_order(deps, session, envelope, payment.order_id, Kind.PAYMENT_FAILED,
                        reason=payment.reason.replace("_", " ").lower())


async def apply_payment_refunded(deps: Deps, session: AsyncSession, envelope: EventEnvelope,
                                 refund: PaymentRefunded) -> None:
    await _notify_order(deps, session, envelope, refund.order_id, Kind.REFUND_ISSUED,
                        amount=format_money(refund.amount), currency=refund.currency,
                        fully_refunded=refund.fully_refunded)


async def apply_review_approved(deps: Deps, session: AsyncSession, envelope: EventEnvelope,
                                review: ReviewApproved) -> None:
    users = [review.author_id] + ([review.seller_id] if review.seller_id not in (None, review.author_id) else [])
    await notify(deps, session, event_id=envelope.event_id, user_ids=[u for u in users if u is not None],
                 message_for=lambda user: Message(
                     Kind.REVIEW_APPROVED, Category.TRANSACTIONAL,
                     {"for_seller": user != review.author_id, "rating": review.rating, "title": review.title}))


async def apply_low_stock(deps: Deps, session: AsyncSession, envelope: EventEnvelope, stock: LowStock) -> None:
    context = {"variant_id": stock.variant_id, "available": stock.available, "threshold": stock.threshold}
    await notify(deps, session, event_id=envelope.event_id, user_ids=await repository.admin_ids(session),
                 message_for=lambda _user: Message(Kind.LOW_STOCK, Category.TRANSACTIONAL, context))


async def apply_flash_sale_scheduled(session: AsyncSession, sale: FlashSaleScheduled) -> None:
    await repository.upsert_flash_sale(session, sale.sale_id, sale.variant_id, sale.starts_at, sale.ends_at)


async def enqueue_webhooks(deps: Deps, session: AsyncSession, envelope: EventEnvelope) -> list[int]:
    """A delivery of this event to every active subscription to its type, sent after the commit."""
    if envelope.event_type not in WEBHOOK_EVENT_TYPES:
        return []
    subscriptions = await repository.subscriptions_for(session, envelope.event_type)
    if not subscriptions:
        return []
    body = orjson.dumps({"id": envelope.event_id, "type": envelope.event_type, "created": envelope.timestamp,
                         "data": envelope.payload})
    now = utc_now()
    ids = [delivery_id for subscription in subscriptions
           if (delivery_id := await repository.insert_webhook_delivery(
               session, delivery_id=next_id(), subscription_id=subscription.id,
               event_id=uuid.UUID(envelope.event_id), event_type=envelope.event_type, body=body, now=now))]
    if ids:
        after_commit(session, lambda: delivery.deliver_webhooks(deps, ids))
    return ids


# ---- flash sales ----------------------------------------------------------------------------------------------

def _sale_message(sale: dict[str, Any]) -> Message:
    return Message(Kind.FLASH_SALE_STARTING, Category.MARKETING, {
        "sale_id": sale["sale_id"], "starts_at_text": sale["starts_at"].strftime("%Y-%m-%d %H:%M UTC"),
        "ends_at_text": sale["ends_at"].strftime("%Y-%m-%d %H:%M UTC")})


def _sale_event_id(sale_id: int) -> str:
    return str(uuid.uuid5(_FLASH_SALE_EVENTS, f"flash-sale-starting:{sale_id}"))


async def announce_flash_sales(deps: Deps) -> int:
    """The periodic job: every sale starting within NOTIFICATIONS_FLASH_SALE_LEAD_SECONDS is announced once to the
    users who asked (`remindMeOfFlashSale`). Returns how many notifications were written."""
    now = utc_now()
    lead = deps.settings.notifications_flash_sale_lead_seconds
    written = 0
    async with unit_of_work(deps.session_factory) as session:
        for sale in await repository.claim_due_sales(session, starts_before=now + timedelta(seconds=lead), now=now):
            message = _sale_message(sale)
            written += len(await notify(deps, session, event_id=_sale_event_id(sale["sale_id"]),
                                        user_ids=await repository.reminder_user_ids(session, sale["sale_id"]),
                                        message_for=_same_message(message)))
    return written


def _same_message(message: Message) -> Callable[[int], Message]:
    return lambda _user: message


async def remind_me_of_flash_sale(deps: Deps, session: AsyncSession, *, caller: Principal, sale_id: int) -> bool:
    sale = await repository.get_flash_sale(session, sale_id)
    if sale is None:
        raise FlashSaleNotFound()
    if sale["starts_at"] <= utc_now():
        raise FlashSaleAlreadyStarted()
    await repository.add_reminder(session, sale_id, caller.user_id, utc_now())
    if sale["announced_at"] is not None:  # already announced to the others: this user is told at once
        message = _sale_message(sale)
        await notify(deps, session, event_id=_sale_event_id(sale_id), user_ids=[caller.user_id],
                     message_for=lambda _user: message)
    return True


# ---- in-app ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class NotificationPage:
    rows: list[NotificationRecord]
    has_next_page: bool


def parse_cursor(after: str | None) -> int | None:
    return parse_id(after, field="after") if after is not None else None


async def notification_page(session: AsyncSession, *, caller: Principal, first: int, after: str | None,
                            unread_only: bool) -> NotificationPage:
    """The caller's notifications, newest first; `after` is an endCursor (a notification id)."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidNotificationInput(f"'first' must be between 1 and {MAX_PAGE_SIZE}", field="first")
    rows = await repository.notification_page(session, caller.user_id, limit=first + 1,
                                              before_id=parse_cursor(after), unread_only=unread_only)
    return NotificationPage(rows=rows[:first], has_next_page=len(rows) > first)


async def count_notifications(session: AsyncSession, user_id: int, *, unread_only: bool) -> int:
    return await repository.count_notifications(session, user_id, unread_only=unread_only)


async def mark_read(session: AsyncSession, *, caller: Principal, notification_id: int) -> NotificationRecord:
    row = await repository.get_notification(session, notification_id)
    if row is None or row.user_id != caller.user_id:
        raise NotificationNotFound()  # another user's is as unknown as a missing one
    return await repository.mark_read(session, notification_id, utc_now())


async def mark_all_read(session: AsyncSession, *, caller: Principal) -> int:
    return await repository.mark_all_read(session, caller.user_id, utc_now())


async def delivery_statuses(session: AsyncSession, notification_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    return await repository.delivery_statuses(session, notification_ids)


# ---- preferences ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Preference:
    category: Category
    channel: Channel
    enabled: bool
    locked: bool      # cannot be turned off (transactional email)
    available: bool   # the channel is configured on this platform (otherwise nothing is sent on it)


async def preferences(session: AsyncSession, settings: Settings, user_id: int) -> list[Preference]:
    prefs = await repository.preferences_of(session, [user_id])
    return [Preference(category=category, channel=channel, enabled=_enabled(prefs, user_id, category, channel),
                       locked=(category, channel) in LOCKED,
                       available=channels.channel_available(settings, channel))
            for category in Category for channel in Channel]


async def update_preferences(session: AsyncSession, settings: Settings, *, caller: Principal,
                             changes: Sequence[tuple[Category, Channel, bool]]) -> list[Preference]:
    """All changes or none: a change of a locked pair to off, or the same pair twice, is BAD_USER_INPUT."""
    if len(changes) > len(Category) * len(Channel):
        raise InvalidNotificationInput("Too many preferences", field="preferences")
    seen: set[tuple[Category, Channel]] = set()
    for category, channel, enabled in changes:
        if (category, channel) in seen:
            raise InvalidNotificationInput(f"{category.value} {channel.value} is given twice", field="preferences")
        seen.add((category, channel))
        if (category, channel) in LOCKED and not enabled:
            raise InvalidNotificationInput(f"{category.value.lower()} {channel.value.lower()} cannot be turned off: "
                                           "it tells you about your own orders and payments", field="preferences")
    now = utc_now()
    for category, channel, enabled in changes:
        await repository.set_preference(session, caller.user_id, category.value, channel.value, enabled, now)
    return await preferences(session, settings, caller.user_id)


async def unsubscribe(session: AsyncSession, redis: Redis, settings: Settings, token: str) -> bool:
    """One-click unsubscribe: marketing email off for the token's user. False for a token that is not ours."""
    found = keys.verify_unsubscribe_token(await keys.secret_key(redis, settings), token)
    if found is None or found[1] != Category.MARKETING.value:
        return False
    await repository.set_preference(session, found[0], Category.MARKETING.value, Channel.EMAIL.value, False,
                                    utc_now())
    return True


# ---- webhooks -------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class CreatedWebhook:
    secret: str  # in this answer only
    subscription: WebhookSubscriptionRecord


def _check_webhook_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname or len(url) > 2000 or parsed.username:
        raise InvalidNotificationInput("url must be an http:// or https:// address without credentials",
                                       field="url")
    return url.strip()


async def create_webhook_subscription(session: AsyncSession, redis: Redis, settings: Settings, *,
                                      caller: Principal, url: str, event_types: Sequence[str]) -> CreatedWebhook:
    """ADMIN: deliveries of `event_types` to `url`, signed with a new secret returned here only (stored
    encrypted: signing needs it in clear)."""
    caller.require_role(ADMIN)
    url = _check_webhook_url(url)
    types = list(dict.fromkeys(event_types))
    unknown = [t for t in types if t not in WEBHOOK_EVENT_TYPES]
    if not types or unknown:
        raise InvalidNotificationInput(f"eventTypes must be some of: {', '.join(WEBHOOK_EVENT_TYPES)}",
                                       field="eventTypes")
    secret = keys.new_webhook_secret()
    record = await repository.insert_webhook_subscription(session, {
        "id": next_id(), "url": url, "event_types": types,
        "secret_encrypted": keys.encrypt_secret(await keys.secret_key(redis, settings), secret),
        "created_by": caller.user_id, "active": True, "created_at": utc_now()})
    return CreatedWebhook(secret=secret, subscription=record)


async def webhook_deliveries(session: AsyncSession, *, caller: Principal, subscription_id: int,
                             first: int) -> list[WebhookDeliveryRecord]:
    caller.require_role(ADMIN)
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidNotificationInput(f"'first' must be between 1 and {MAX_PAGE_SIZE}", field="first")
    return await repository.webhook_delivery_page(session, subscription_id, first)
