"""ASGI app of the search subgraph."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.search.backends import search_engine
from subgraphs.search.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    return create_app("search", schema, settings=settings, extras={"search_engine": search_engine(settings)})
