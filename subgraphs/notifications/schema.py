"""GraphQL adapter of the notifications domain: validates input shapes, calls service.py, maps records to types.

A signed-in user reads and marks their own notifications, follows them live (`notificationReceived`, one Redis
channel per user), and chooses channels per category; an ADMIN registers partner webhooks."""
from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from kernel.graphql import Info, PageInfo, RequestContext, build_schema
from kernel.ids import parse_id
from kernel.pubsub import MAYBE_MISSED, listen
from subgraphs.notifications import service
from subgraphs.notifications.dataloaders import DeliveryStatusLoader
from subgraphs.notifications.delivery import Deps
from subgraphs.notifications.models import (
    Category,
    Channel,
    DeliveryStatus,
    Kind,
    NotificationRecord,
    WebhookDeliveryRecord,
    WebhookStatus,
)

strawberry.enum(Category, name="NotificationCategory",
                description="TRANSACTIONAL: about your own orders, payments and reviews (email cannot be turned off); "
                            "MARKETING: flash-sale reminders (every channel can be turned off)")
strawberry.enum(Channel, name="NotificationChannel")
strawberry.enum(Kind, name="NotificationKind")
strawberry.enum(DeliveryStatus, name="NotificationDeliveryStatus",
                description="PENDING: to be sent; SENT: the provider accepted it; FAILED: every attempt failed; "
                            "UNAVAILABLE: the channel is not configured on this platform; DISABLED: you turned it "
                            "off; NO_ADDRESS: no address is known for you on this channel")
strawberry.enum(WebhookStatus, name="WebhookDeliveryStatus")


@strawberry.type(description="What happened to a notification on one outbound channel.")
class NotificationDelivery:
    channel: Channel
    status: DeliveryStatus


@strawberry.type(description="A notification for the signed-in user.")
class Notification:
    id: strawberry.ID
    kind: Kind
    category: Category
    title: str
    body: str
    order_id: strawberry.ID | None = strawberry.field(description="The order it is about, if any")
    link: str | None
    read: bool
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def from_record(cls, row: NotificationRecord) -> Notification:
        return cls(id=strawberry.ID(str(row.id)), kind=Kind(row.kind), category=Category(row.category),
                   title=row.title, body=row.body,
                   order_id=strawberry.ID(str(row.order_id)) if row.order_id is not None else None, link=row.link,
                   read=row.read_at is not None, read_at=row.read_at, created_at=row.created_at)

    @strawberry.field(description="Email, SMS and push: sent, pending, or why not (never a pretended send).")
    async def deliveries(self, info: Info) -> list[NotificationDelivery]:
        statuses = await info.context.loader(DeliveryStatusLoader).load(int(self.id))
        return [NotificationDelivery(channel=Channel(c), status=DeliveryStatus(s)) for c, s in sorted(statuses.items())]


@strawberry.type
class NotificationEdge:
    cursor: str
    node: Notification


@strawberry.type
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: PageInfo
    _user_id: strawberry.Private[int]
    _unread_only: strawberry.Private[bool]

    @strawberry.field(description="Notifications matching the arguments (all pages).")
    async def total_count(self, info: Info) -> int:
        return await service.count_notifications(await info.context.session(), self._user_id,
                                                 unread_only=self._unread_only)

    @strawberry.field(description="Your unread notifications (all pages).")
    async def unread_count(self, info: Info) -> int:
        return await service.count_notifications(await info.context.session(), self._user_id, unread_only=True)


@strawberry.type(description="One category on one channel.")
class NotificationPreference:
    category: Category
    channel: Channel
    enabled: bool
    locked: bool = strawberry.field(description="Cannot be turned off (transactional email)")
    available: bool = strawberry.field(description="The channel is configured on this platform; if not, nothing "
                                                   "is sent on it whatever `enabled` says")


@strawberry.type(description="The signed-in user's choices, one entry per category and channel.")
class NotificationPreferences:
    preferences: list[NotificationPreference]


@strawberry.input
class NotificationPreferenceInput:
    category: Category
    channel: Channel
    enabled: bool


@strawberry.input(description="The entries to change (others stay as they are).")
class NotificationPreferencesInput:
    preferences: list[NotificationPreferenceInput]


@strawberry.type(description="A partner endpoint that receives events, each POST signed with `NexusCart-Signature: "
                             "t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">` under the subscription's secret.")
class WebhookSubscription:
    id: strawberry.ID
    url: str
    event_types: list[str]
    created_at: datetime
    secret: str | None = strawberry.field(description="The signing secret: in createWebhookSubscription's answer "
                                                      "only, null everywhere else")


@strawberry.input
class CreateWebhookSubscriptionInput:
    url: str = strawberry.field(description="http:// or https://")
    event_types: list[str] = strawberry.field(description="Topics, e.g. order.placed, order.paid, order.shipped")


@strawberry.type(description="One event sent (or being sent) to a webhook subscription.")
class WebhookDelivery:
    id: strawberry.ID
    event_id: str
    event_type: str
    status: WebhookStatus
    attempts: int
    last_status_code: int | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_record(cls, row: WebhookDeliveryRecord) -> WebhookDelivery:
        return cls(id=strawberry.ID(str(row.id)), event_id=row.event_id, event_type=row.event_type,
                   status=WebhookStatus(row.status), attempts=row.attempts, last_status_code=row.last_status_code,
                   delivered_at=row.delivered_at, created_at=row.created_at)


def _ctx(info: Info) -> RequestContext:
    ctx = info.context
    ctx.mark_uncacheable()
    return ctx


def _deps(ctx: RequestContext) -> Deps:
    return Deps(settings=ctx.settings, session_factory=ctx.resources.session_factory, redis=ctx.redis)


def _preferences(found: list[service.Preference]) -> NotificationPreferences:
    return NotificationPreferences(preferences=[
        NotificationPreference(category=p.category, channel=p.channel, enabled=p.enabled, locked=p.locked,
                               available=p.available) for p in found])


@strawberry.type
class Query:
    @strawberry.field(description="Signed in: your notifications, newest first. first: 1..100; `after` takes an "
                                  "endCursor; unreadOnly: only those not marked read.")
    async def notifications(self, info: Info, first: int | None = 20, after: str | None = None,
                            unread_only: bool | None = False) -> NotificationConnection:
        ctx = _ctx(info)
        caller = ctx.require_user()
        unread_only = bool(unread_only)
        page = await service.notification_page(await ctx.session(), caller=caller,
                                               first=20 if first is None else first, after=after,
                                               unread_only=unread_only)
        edges = [NotificationEdge(cursor=str(r.id), node=Notification.from_record(r)) for r in page.rows]
        return NotificationConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next_page,
                                                                      end_cursor=edges[-1].cursor if edges else None),
                                      _user_id=caller.user_id, _unread_only=unread_only)

    @strawberry.field(description="Signed in: your channels per category.")
    async def notification_preferences(self, info: Info) -> NotificationPreferences:
        ctx = _ctx(info)
        caller = ctx.require_user()
        return _preferences(await service.preferences(await ctx.session(), ctx.settings, caller.user_id))

    @strawberry.field(description="ADMIN: a webhook subscription's deliveries, newest first (first: 1..100).")
    async def webhook_deliveries(self, info: Info, subscription_id: strawberry.ID,
                                 first: int | None = 20) -> list[WebhookDelivery]:
        ctx = _ctx(info)
        rows = await service.webhook_deliveries(await ctx.session(), caller=ctx.require_user(),
                                                subscription_id=parse_id(subscription_id, field="subscriptionId"),
                                                first=20 if first is None else first)
        return [WebhookDelivery.from_record(r) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Signed in: mark one of your notifications read (NOT_FOUND for anyone "
                                     "else's). Marking it again keeps the first time.")
    async def mark_notification_read(self, info: Info, id: strawberry.ID) -> Notification:
        ctx = _ctx(info)
        row = await service.mark_read(await ctx.session(), caller=ctx.require_user(), notification_id=parse_id(id))
        return Notification.from_record(row)

    @strawberry.mutation(description="Signed in: mark all your notifications read; returns how many were unread.")
    async def mark_all_notifications_read(self, info: Info) -> int:
        ctx = _ctx(info)
        return await service.mark_all_read(await ctx.session(), caller=ctx.require_user())

    @strawberry.mutation(description="Signed in: change channels per category. Turning off transactional email is "
                                     "BAD_USER_INPUT (and nothing changes).")
    async def update_notification_preferences(self, info: Info,
                                              input: NotificationPreferencesInput) -> NotificationPreferences:
        ctx = _ctx(info)
        caller = ctx.require_user()
        changes = [(p.category, p.channel, p.enabled) for p in input.preferences]
        return _preferences(await service.update_preferences(await ctx.session(), ctx.settings, caller=caller,
                                                             changes=changes))

    @strawberry.mutation(description="Signed in: be told (MARKETING) when this flash sale is about to start. "
                                     "NOT_FOUND for an unknown sale, CONFLICT once it has started. Asking twice is "
                                     "the same as once.")
    async def remind_me_of_flash_sale(self, info: Info, sale_id: strawberry.ID) -> bool:
        ctx = _ctx(info)
        return await service.remind_me_of_flash_sale(_deps(ctx), await ctx.session(), caller=ctx.require_user(),
                                                     sale_id=parse_id(sale_id, field="saleId"))

    @strawberry.mutation(description="ADMIN: send these events to a partner's URL. The signing secret is in this "
                                     "answer only.")
    async def create_webhook_subscription(self, info: Info,
                                          input: CreateWebhookSubscriptionInput) -> WebhookSubscription:
        ctx = _ctx(info)
        created = await service.create_webhook_subscription(await ctx.session(), ctx.redis, ctx.settings,
                                                            caller=ctx.require_user(), url=input.url,
                                                            event_types=input.event_types)
        record = created.subscription
        return WebhookSubscription(id=strawberry.ID(str(record.id)), url=record.url,
                                   event_types=list(record.event_types), created_at=record.created_at,
                                   secret=created.secret)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Signed in: each new notification of yours as it is written.")
    async def notification_received(self, info: Info) -> AsyncGenerator[Notification, None]:
        ctx = info.context
        caller = ctx.require_user()
        async with listen(ctx.redis, service.channel_name(caller.user_id)) as messages:
            async for data in messages:
                if data == MAYBE_MISSED:
                    continue  # lost while Redis reconnected: the `notifications` query has them
                yield Notification.from_record(service.notification_from_message(data))


schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription)
