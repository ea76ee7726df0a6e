"""ASGI app of the shipping subgraph, plus the internal quote orders asks at placeOrder (internal.py).
`shippingMethods(cartId, ...)` reads the cart (`settings.cart_service_url`) through the process's peer client."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.shipping import internal
from subgraphs.shipping.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("shipping", schema, settings=settings, routes=internal.ROUTES)
