"""ASGI app of the orders subgraph, plus the internal endpoint promotions creates flash-sale orders through
(internal.py)."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.orders import internal
from subgraphs.orders.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.orders.schema import schema


def build_app(settings: Settings | None = None, *, internal_http: PeerClient | None = None) -> Any:
    """The peers are found at `settings.cart_service_url` / `users_service_url`. The PeerClient opens its
    aiohttp session lazily inside the serving event loop; create_app closes it at shutdown (`aclose`)."""
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("orders", schema, extras={INTERNAL_HTTP: http}, settings=settings,
                      routes=internal.ROUTES)
