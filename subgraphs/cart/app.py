"""ASGI app of the cart subgraph, plus the internal checkout snapshot orders reads at placeOrder (internal.py)."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.cart import internal
from subgraphs.cart.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.cart.schema import schema


def build_app(settings: Settings | None = None, *, internal_http: PeerClient | None = None) -> Any:
    """applyCoupon asks promotions (`settings.promotions_service_url`) through one pooled PeerClient."""
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("cart", schema, settings=settings, extras={INTERNAL_HTTP: http},
                      routes=internal.ROUTES)
