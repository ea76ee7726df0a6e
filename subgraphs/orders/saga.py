"""The order saga's orchestration: consumes inventory and payment outcomes, moves the order on, and sweeps
orders whose payment never came. Its state is in Postgres (orders.status + orders.order_sagas), and each
handler runs inside the consumer's inbox transaction, so a restarted worker simply resumes.

consumers.py registers these handlers with the worker.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import PayloadHandler, WorkerResources
from kernel.events import EventPayload
from kernel.uow import unit_of_work
from subgraphs.inventory.events import InventoryOutOfStock, InventoryReserved
from subgraphs.orders import service
from subgraphs.orders.models import CancellationReason, OrderStatus
from subgraphs.payments.events import PaymentFailed, PaymentRefunded, PaymentSuccessful
from subgraphs.promotions.events import FlashSalePurchased
from subgraphs.shipping.events import ShipmentCreated, ShipmentDelivered

log = logging.getLogger("nexuscart.orders.saga")

S = OrderStatus
SWEEP_BATCH_SIZE = 50
SWEEP_MAX_BATCHES = 20  # bounds one run; the next interval picks up the rest

# event -> (the status the order must be in, the status it moves to, the reason recorded)
STEPS: dict[type[EventPayload], tuple[OrderStatus, OrderStatus, str | None]] = {
    InventoryReserved: (S.PENDING, S.AWAITING_PAYMENT, None),
    InventoryOutOfStock: (S.PENDING, S.CANCELLED, CancellationReason.OUT_OF_STOCK.value),
    PaymentSuccessful: (S.AWAITING_PAYMENT, S.PAID, None),
    PaymentFailed: (S.AWAITING_PAYMENT, S.CANCELLED, CancellationReason.PAYMENT_DECLINED.value),
}

SagaEvent = InventoryReserved | InventoryOutOfStock | PaymentSuccessful | PaymentFailed

# payment.refunded: a full refund ends the order REFUNDED (a cancelled one, or a captured one refunded outright),
# a partial one marks a captured order PARTIALLY_REFUNDED; from anywhere else it changes nothing.
REFUND_SOURCES: dict[bool, frozenset[OrderStatus]] = {
    True: frozenset({S.CANCELLED, S.PAID, S.SHIPPED, S.DELIVERED, S.PARTIALLY_REFUNDED}),
    False: frozenset({S.PAID, S.SHIPPED, S.DELIVERED}),
}


def saga_handlers(resources: WorkerResources) -> dict[type[EventPayload], PayloadHandler]:
    """One handler per step event: each moves the order it names on (when it is still where the step expects)."""

    async def step(session: AsyncSession, event: SagaEvent) -> None:
        expected, target, reason = STEPS[type(event)]
        await service.saga_step(session, resources.redis, resources.settings, event.order_id, expected=expected,
                                to_status=target, reason=reason)

    async def refunded(session: AsyncSession, event: PaymentRefunded) -> None:
        order = await service.get_order_for_saga(session, event.order_id)
        if order is None or order.status not in REFUND_SOURCES[event.fully_refunded]:
            return
        target = S.REFUNDED if event.fully_refunded else S.PARTIALLY_REFUNDED
        await service.saga_step(session, resources.redis, resources.settings, event.order_id,
                                expected=order.status, to_status=target)

    handlers: dict[type[EventPayload], PayloadHandler] = {payload_type: step for payload_type in STEPS}
    handlers[PaymentRefunded] = refunded
    return handlers


def payment_timeout_sweeper(resources: WorkerResources) -> Callable[[], Awaitable[int]]:
    async def sweep() -> int:
        total = 0
        for _ in range(SWEEP_MAX_BATCHES):
            # One transaction per batch: locks are held briefly, and a crash loses at most one batch of work.
            async with unit_of_work(resources.session_factory) as session:
                cancelled = await service.cancel_expired_payments(
                    session, resources.redis, resources.settings, batch_size=SWEEP_BATCH_SIZE)
            total += cancelled
            if cancelled < SWEEP_BATCH_SIZE:
                break
        if total:
            log.info("cancelled unpaid orders", extra={"count": total})
        # The watchdog in the same pass: the orders stuck before the payment deadline (service.drive_stalled_sagas).
        for _ in range(SWEEP_MAX_BATCHES):
            async with unit_of_work(resources.session_factory) as session:
                driven = await service.drive_stalled_sagas(session, resources.redis, resources.settings,
                                                           batch_size=SWEEP_BATCH_SIZE)
            if any(driven.values()):
                log.warning("saga watchdog drove stalled orders on", extra=driven)
            total += sum(driven.values())
            if max(driven.values()) < SWEEP_BATCH_SIZE:
                break
        return total

    return sweep


def flash_sale_order_handler(
        resources: WorkerResources) -> Callable[[AsyncSession, FlashSalePurchased], Awaitable[None]]:
    """flashsale.purchased: the promotions reconciler hands over a reservation whose order the purchase
    request did not create (a crash or a timeout in between); creating it twice is impossible (same key)."""

    async def handle(session: AsyncSession, purchased: FlashSalePurchased) -> None:
        reservation = service.checked_reservation(purchased)  # out of range: retried, then the DLQ
        await service.create_flash_sale_order(session, resources.settings, reservation)

    return handle


def shipment_handlers(resources: WorkerResources) -> dict[type[EventPayload], PayloadHandler]:
    """shipping's shipment.created (the first one ships the order) and shipment.delivered (the last one delivers
    it). Idempotent by state: a redelivery finds the order past that step and changes nothing."""

    def info(event: ShipmentCreated | ShipmentDelivered) -> service.ShipmentInfo:
        return service.ShipmentInfo(shipment_id=event.shipment_id, carrier=event.carrier,
                                    tracking_number=event.tracking_number, tracking_url=event.tracking_url)

    async def created(session: AsyncSession, event: ShipmentCreated) -> None:
        await service.apply_shipment_created(session, resources.redis, resources.settings, event.order_id,
                                             info(event))

    async def delivered(session: AsyncSession, event: ShipmentDelivered) -> None:
        await service.apply_shipment_delivered(session, resources.redis, resources.settings, event.order_id,
                                               info(event), event.order_delivered)

    return {ShipmentCreated: created, ShipmentDelivered: delivered}
