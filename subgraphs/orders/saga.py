"""The order saga's orchestration: consumes inventory and payment outcomes, moves the order on, and sweeps
orders whose payment never came. Its state is in Postgres (orders.status + orders.order_sagas), and each
handler runs inside the consumer's inbox transaction, so a restarted worker simply resumes.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from kernel.db import run_callbacks, take_after_commit
from kernel.events import EventEnvelope
from kernel.ids import parse_id
from subgraphs.orders import events, service
from subgraphs.orders.models import CancellationReason, OrderStatus

log = logging.getLogger("nexuscart.orders.saga")

S = OrderStatus
SWEEP_BATCH_SIZE = 50
SWEEP_MAX_BATCHES = 20  # bounds one run; the next interval picks up the rest

# event type -> (the status the order must be in, the status it moves to, the reason recorded)
STEPS: dict[str, tuple[OrderStatus, OrderStatus, str | None]] = {
    events.INVENTORY_RESERVED: (S.PENDING, S.AWAITING_PAYMENT, None),
    events.INVENTORY_OUT_OF_STOCK: (S.PENDING, S.CANCELLED, CancellationReason.OUT_OF_STOCK.value),
    events.PAYMENT_SUCCESSFUL: (S.AWAITING_PAYMENT, S.PAID, None),
    events.PAYMENT_FAILED: (S.AWAITING_PAYMENT, S.CANCELLED, CancellationReason.PAYMENT_DECLINED.value),
    events.PAYMENT_REFUNDED: (S.CANCELLED, S.REFUNDED, None),
}


def saga_handler(resources: WorkerResources) -> Callable[[AsyncSession, EventEnvelope], Awaitable[None]]:
    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        step = STEPS.get(envelope.event_type)
        if step is None:
            log.warning("orders-saga got an event it does not handle", extra={"event_type": envelope.event_type})
            return
        expected, target, reason = step
        order_id = parse_id(envelope.payload.get("order_id"), field="order_id")  # garbage -> retried, then DLQ
        await service.saga_step(session, resources.redis, resources.settings, order_id, expected=expected,
                                to_status=target, reason=reason)

    return handle


def payment_timeout_sweeper(resources: WorkerResources) -> Callable[[], Awaitable[int]]:
    async def sweep() -> int:
        total = 0
        for _ in range(SWEEP_MAX_BATCHES):
            # One transaction per batch: locks are held briefly, and a crash loses at most one batch of work.
            async with resources.session_factory() as session:
                try:
                    async with session.begin():
                        cancelled = await service.cancel_expired_payments(
                            session, resources.redis, resources.settings, batch_size=SWEEP_BATCH_SIZE)
                finally:
                    callbacks = take_after_commit(session)
            await run_callbacks(callbacks)  # only reached after a commit
            total += cancelled
            if cancelled < SWEEP_BATCH_SIZE:
                break
        if total:
            log.info("cancelled unpaid orders", extra={"count": total})
        return total

    return sweep


def flash_sale_order_handler(resources: WorkerResources) -> Callable[[AsyncSession, EventEnvelope], Awaitable[None]]:
    """flashsale.purchased: the promotions reconciler hands over a reservation whose order the purchase
    request did not create (a crash or a timeout in between); creating it twice is impossible (same key)."""
    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        reservation = service.FlashSaleReservationIn.from_payload(envelope.payload)  # malformed -> retried, DLQ
        await service.create_flash_sale_order(session, resources.settings, reservation)

    return handle


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    return [ConsumerSpec(name="orders-saga", schema="orders", topics=events.SAGA_TOPICS,
                         handler=saga_handler(resources)),
            ConsumerSpec(name="orders-flash-sales", schema="orders", topics=(events.FLASH_SALE_PURCHASED,),
                         handler=flash_sale_order_handler(resources))]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return [PeriodicTask(name="orders-payment-timeout", interval_seconds=resources.settings.saga_sweep_interval_seconds,
                         run=payment_timeout_sweeper(resources))]
