"""The events the shipping domain emits, keyed by the order id (so one order's shipment events stay ordered on
one partition). A contract only (consumers.py runs what shipping consumes): other domains import these types.

`shipment.created`: a shipment left with some or all of an order's lines; orders moves a PAID order to SHIPPED on
the first one and puts its tracking in `order.shipped`. `shipment.delivered`: a shipment arrived; with
`order_delivered` (every line shipped and every shipment delivered) orders moves the order to DELIVERED.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

from kernel.events import EventPayload, Id


@dataclasses.dataclass(frozen=True, slots=True)
class ShipmentLine:
    item_id: Id  # the order line (OrderItem.id)
    quantity: int


@dataclasses.dataclass(frozen=True, slots=True)
class ShipmentCreated(EventPayload, topic="shipment.created"):
    shipment_id: Id
    order_id: Id
    user_id: Id
    carrier: str
    tracking_number: str
    tracking_url: str | None
    items: list[ShipmentLine]
    shipped_at: datetime
    fully_shipped: bool  # every line of the order is now shipped in full


@dataclasses.dataclass(frozen=True, slots=True)
class ShipmentDelivered(EventPayload, topic="shipment.delivered"):
    shipment_id: Id
    order_id: Id
    user_id: Id
    carrier: str
    tracking_number: str
    tracking_url: str | None
    delivered_at: datetime
    order_delivered: bool  # every line shipped and every shipment delivered: the order is delivered
