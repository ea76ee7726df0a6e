"""ASGI app of the inventory subgraph."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.inventory.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.inventory.schema import schema


def build_app(settings: Settings | None = None, *, internal_http: PeerClient | None = None) -> Any:
    """adjustStock asks the catalog (`settings.catalog_service_url`) about a variant inventory has not heard
    of yet, through one pooled PeerClient."""
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("inventory", schema, settings=settings, extras={INTERNAL_HTTP: http})
