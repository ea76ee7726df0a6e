"""What the payments domain runs in the worker process: the `payments` consumer group (inbox in schema
`payments`), the saga steps of docs/commerce-spine.md:

  order.confirmed  -> charge the order once -> payment.successful | payment.failed (or nothing while PROCESSING)
  order.cancelled  -> refund a captured payment, cancel an open intent, or leave a tombstone
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from subgraphs.orders.events import OrderCancelled, OrderConfirmed
from subgraphs.payments import service
from subgraphs.payments.models import SCHEMA
from subgraphs.payments.providers import PaymentProvider, build_providers

CONSUMER_GROUP = "payments"
# `resources.extras[PROVIDERS_EXTRA]` may hold a prepared {name: provider} mapping (tests, or a worker that
# wants to share provider clients); otherwise providers are built from settings and the worker's Redis.
PROVIDERS_EXTRA = "payment_providers"


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    providers: Mapping[str, PaymentProvider] = (resources.extras.get(PROVIDERS_EXTRA)
                                                or build_providers(resources.settings, resources.redis))

    async def on_order_confirmed(session: AsyncSession, order: OrderConfirmed) -> None:
        await service.charge_order(session, providers, order_id=order.order_id, user_id=order.user_id,
                                   amount=order.amount, currency=order.currency, provider=order.payment.provider,
                                   token=order.payment.token)

    async def on_order_cancelled(session: AsyncSession, order: OrderCancelled) -> None:
        await service.cancel_order_payment(session, providers, order_id=order.order_id, user_id=order.user_id)

    # One event per transaction: a charge is made at the provider before its payment row commits. In a batch
    # rolled back for another event's failure, the charged order's row vanishes while the money stays captured,
    # and a concurrent order.cancelled (waiting on that row) would then leave a tombstone: never refunded.
    return [ConsumerSpec(name=CONSUMER_GROUP, schema=SCHEMA, transaction_batch=1,
                         handlers={OrderConfirmed: on_order_confirmed, OrderCancelled: on_order_cancelled})]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return []
