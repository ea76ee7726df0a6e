"""ASGI app of the shipping subgraph, plus the internal quote orders asks at placeOrder (internal.py).
`shippingMethods(cartId, ...)` reads the cart (`settings.cart_service_url`) through one pooled PeerClient."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.shipping import internal
from subgraphs.shipping.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.shipping.schema import schema


def build_app(settings: Settings | None = None, *, internal_http: PeerClient | None = None) -> Any:
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("shipping", schema, settings=settings, extras={INTERNAL_HTTP: http},
                      routes=internal.ROUTES)
