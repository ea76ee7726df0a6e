"""ASGI app of the payments subgraph."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.payments.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("payments", schema, settings=settings)
