"""ASGI app of the inventory subgraph, plus the internal endpoint placeOrder reserves stock through (internal.py).
adjustStock asks the catalog (`settings.catalog_service_url`) about a variant inventory has not heard of yet,
through the process's peer client."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.inventory import internal
from subgraphs.inventory.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("inventory", schema, settings=settings, routes=internal.ROUTES)
