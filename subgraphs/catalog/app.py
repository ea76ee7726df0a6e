"""ASGI app of the catalog subgraph."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.catalog.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("catalog", schema, settings=settings)
