"""ASGI app of the cart subgraph, plus the internal checkout snapshot orders reads at placeOrder (internal.py).
applyCoupon asks promotions (`settings.promotions_service_url`) through the process's peer client."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.cart import internal
from subgraphs.cart.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("cart", schema, settings=settings, routes=internal.ROUTES)
