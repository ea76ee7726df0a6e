"""ASGI app of the reviews subgraph. A product its projection has not heard of yet is asked of the catalog
(`settings.catalog_service_url`) through one pooled PeerClient (clients.py)."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.reviews.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.reviews.schema import schema


def build_app(settings: Settings | None = None, *, internal_http: PeerClient | None = None) -> Any:
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("reviews", schema, settings=settings, extras={INTERNAL_HTTP: http})
