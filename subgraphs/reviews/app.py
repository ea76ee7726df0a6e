"""ASGI app of the reviews subgraph. A product its projection has not heard of yet is asked of the catalog
(`settings.catalog_service_url`) through the process's peer client (clients.py)."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.reviews.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("reviews", schema, settings=settings)
