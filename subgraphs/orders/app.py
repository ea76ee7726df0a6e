"""ASGI app of the orders subgraph, plus the internal endpoint promotions creates flash-sale orders through
(internal.py). placeOrder asks its peers (`settings.cart_service_url`, `users_service_url`, ...) through the
process's peer client."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.orders import internal
from subgraphs.orders.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("orders", schema, settings=settings, routes=internal.ROUTES)
