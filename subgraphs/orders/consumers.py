"""What the orders domain runs in the worker process (workers/runtime.py): the saga's consumer groups, the
`orders-shipping` group (shipment.created / shipment.delivered move the order to SHIPPED / DELIVERED) and its
payment-timeout sweep. The handlers are in saga.py.
"""
from __future__ import annotations

from kernel.consumer import ConsumerSpec, PeriodicTask, WorkerResources
from subgraphs.orders import saga
from subgraphs.orders.models import SCHEMA
from subgraphs.promotions.events import FlashSalePurchased


def consumer_specs(resources: WorkerResources) -> list[ConsumerSpec]:
    return [ConsumerSpec(name="orders-saga", schema=SCHEMA, handlers=saga.saga_handlers(resources), prompt=True),
            ConsumerSpec(name="orders-flash-sales", schema=SCHEMA,
                         handlers={FlashSalePurchased: saga.flash_sale_order_handler(resources)}, prompt=True),
            ConsumerSpec(name="orders-shipping", schema=SCHEMA, handlers=saga.shipment_handlers(resources))]


def periodic_tasks(resources: WorkerResources) -> list[PeriodicTask]:
    return [PeriodicTask(name="orders-payment-timeout", interval_seconds=resources.settings.saga_sweep_interval_seconds,
                         run=saga.payment_timeout_sweeper(resources))]
