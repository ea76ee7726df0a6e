"""What the payments domain runs in the worker process: the `payments` consumer group (inbox in schema
`payments`), the saga steps of docs/commerce-spine.md, and the reconciler:

  order.confirmed  -> charge the order once -> payment.successful | payment.failed (or nothing while undecided)
  order.cancelled  -> refund a captured payment, cancel an open intent, or leave a tombstone
  every PAYMENT_RECONCILE_INTERVAL_SECONDS: settle payments and refunds the provider left undecided
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from subgraphs.orders.events import OrderCancelled, OrderConfirmed
from subgraphs.payments import service
from subgraphs.payments.models import SCHEMA
from subgraphs.payments.providers import PaymentProvider, shared_providers

log = logging.getLogger("nexuscart.payments.consumers")

CONSUMER_GROUP = "payments"
RECONCILE_BATCH = 50  # payments and refunds per run; the next run picks up the rest


def worker_providers(resources: WorkerResources) -> Mapping[str, PaymentProvider]:
    """One set of provider clients per worker process, shared by the consumer and the reconciler (tests may
    put prepared ones in `resources.extras[PROVIDERS_EXTRA]`)."""
    return shared_providers(resources.extras, resources.settings, resources.redis)


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    providers = worker_providers(resources)
    sessions = resources.session_factory

    async def on_order_confirmed(session: AsyncSession, order: OrderConfirmed) -> None:
        await service.charge_order(session, providers, sessions, order_id=order.order_id, user_id=order.user_id,
                                   amount=order.amount, currency=order.currency, provider=order.payment.provider,
                                   token=order.payment.token)

    async def on_order_cancelled(session: AsyncSession, order: OrderCancelled) -> None:
        await service.cancel_order_payment(session, providers, sessions, order_id=order.order_id,
                                           user_id=order.user_id)

    # One event per transaction: a charge is made at the provider before its result commits. In a batch
    # rolled back for another event's failure, the record of an act that stays done would vanish with it.
    # Different orders' charges at once: each waits on the provider and three commits, so one at a time per
    # partition held checkout at 1-3 charges/s under load (events of one order stay in order).
    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, transaction_batch=1, prompt=True, key_concurrency=8,
                         handlers={OrderConfirmed: on_order_confirmed, OrderCancelled: on_order_cancelled})]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    settings = resources.settings
    idle_for = timedelta(seconds=settings.payment_reconcile_after_seconds)

    async def reconcile() -> int:
        looked = await service.reconcile_once(resources.session_factory, worker_providers(resources),
                                              idle_for=idle_for, limit=RECONCILE_BATCH)
        if looked:
            log.info("reconciled undecided payments", extra={"count": looked})
        return looked

    return [PeriodicTask(name="payments-reconciler", interval_seconds=settings.payment_reconcile_interval_seconds,
                         run=reconcile)]
