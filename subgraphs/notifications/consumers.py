"""What the notifications domain runs in the worker process.

The `notifications` group (inbox in schema `notifications`) turns other domains' events into notifications:

    user.registered                          -> recipients: the user's address and roles (nothing else)
    order.placed                             -> order_facts (number, lines, totals), and "we received your order"
    order.paid / shipped / delivered / cancelled, payment.failed, payment.refunded
                                             -> the order's owner is told (payments' events name the order only:
                                                its owner comes from order_facts; one that comes before
                                                its order.placed is held until that does, see
                                                service.notify_early_events)
    review.approved                          -> the author (and the product's seller)
    inventory.low_stock                      -> every ADMIN
    flashsale.scheduled                      -> flash_sales, for the reminder job
  and every one of them (but user.registered) -> a delivery to each partner webhook subscribed to its type

Periodic jobs: `notifications-retry` notifies held events whose order.placed has come (and drops those held too
long), sends the ledger rows a crash or a failure left PENDING, and retries due webhook deliveries;
`notifications-flash-sales` announces sales starting within the lead time to those who asked.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources, current_envelope
from kernel.events import EventEnvelope, EventPayload
from kernel.uow import unit_of_work
from subgraphs.inventory.events import LowStock
from subgraphs.notifications import delivery, service
from subgraphs.notifications.delivery import Deps
from subgraphs.notifications.models import SCHEMA
from subgraphs.orders.events import OrderCancelled, OrderDelivered, OrderPaid, OrderPlaced, OrderShipped
from subgraphs.payments.events import PaymentFailed, PaymentRefunded
from subgraphs.promotions.events import FlashSaleScheduled
from subgraphs.reviews.events import ReviewApproved
from subgraphs.users.events import UserRegistered

CONSUMER_GROUP = "notifications"

EnvelopeHandler = Callable[[Deps, AsyncSession, EventEnvelope, Any], Awaitable[None]]


def deps_of(resources: WorkerResources) -> Deps:
    return Deps(settings=resources.settings, session_factory=resources.session_factory, redis=resources.redis)


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    deps = deps_of(resources)

    def notifying(handle: EnvelopeHandler) -> Callable[[AsyncSession, Any], Awaitable[None]]:
        async def run(session: AsyncSession, payload: EventPayload) -> None:
            envelope = current_envelope()
            await service.enqueue_webhooks(deps, session, envelope)
            await handle(deps, session, envelope, payload)
        return run

    async def on_user_registered(session: AsyncSession, user: UserRegistered) -> None:
        await service.apply_user_registered(session, user)

    async def on_flash_sale_scheduled(session: AsyncSession, sale: FlashSaleScheduled) -> None:
        await service.enqueue_webhooks(deps, session, current_envelope())
        await service.apply_flash_sale_scheduled(session, sale)

    async def on_order_placed(deps: Deps, session: AsyncSession, envelope: EventEnvelope, order: OrderPlaced) -> None:
        await service.apply_order_placed(deps, session, envelope, order)
        await service.notify_early_events(session, replayer(deps), [order.order_id])

    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, handlers={
        UserRegistered: on_user_registered,
        OrderPlaced: notifying(on_order_placed),
        **{payload_type: notifying(handle) for payload_type, handle in ORDER_EVENTS.items()},
        ReviewApproved: notifying(service.apply_review_approved),
        LowStock: notifying(service.apply_low_stock),
        FlashSaleScheduled: on_flash_sale_scheduled})]


# The events about an order that need its order.placed first (service.notify_early_events holds them until then).
ORDER_EVENTS: dict[type[EventPayload], EnvelopeHandler] = {
    OrderPaid: service.apply_order_paid,
    OrderShipped: service.apply_order_shipped,
    OrderDelivered: service.apply_order_delivered,
    OrderCancelled: service.apply_order_cancelled,
    PaymentFailed: service.apply_payment_failed,
    PaymentRefunded: service.apply_payment_refunded,
}


def replayer(deps: Deps) -> service.Replay:
    """Notifies a held event through its own handler (its webhooks went out when it was first consumed)."""
    by_topic = {payload_type.topic: (payload_type, handle) for payload_type, handle in ORDER_EVENTS.items()}

    async def replay(session: AsyncSession, envelope: EventEnvelope) -> None:
        payload_type, handle = by_topic[envelope.event_type]
        await handle(deps, session, envelope, payload_type.from_payload(envelope.payload))

    return replay


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    deps = deps_of(resources)
    settings = resources.settings

    async def retry() -> None:
        async with unit_of_work(deps.session_factory) as session:
            await service.notify_early_events(session, replayer(deps))
        await delivery.send_deliveries(deps)
        await delivery.deliver_webhooks(deps)

    async def announce() -> None:
        await service.announce_flash_sales(deps)

    return [PeriodicTask("notifications-retry", settings.notifications_retry_interval_seconds, retry),
            PeriodicTask("notifications-flash-sales", settings.notifications_flash_sale_check_interval_seconds,
                         announce)]
