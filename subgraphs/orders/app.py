"""ASGI app of the orders subgraph."""
from __future__ import annotations

from typing import Any

import httpx

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.orders.clients import INTERNAL_HTTP, build_internal_client
from subgraphs.orders.schema import schema


def build_app(settings: Settings | None = None, *, internal_http: httpx.AsyncClient | None = None) -> Any:
    """`internal_http` lets tests serve the cart and users internal endpoints from a local fake app."""
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("orders", schema, extras={INTERNAL_HTTP: http}, settings=settings)
