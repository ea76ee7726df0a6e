"""ASGI app of the partners subgraph, plus its internal endpoint (internal.py: the router's key lookup)."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.partners import internal
from subgraphs.partners.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("partners", schema, settings=settings or get_settings(), routes=internal.ROUTES)
