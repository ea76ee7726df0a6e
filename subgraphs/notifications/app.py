"""ASGI app of the notifications subgraph, plus its one-click unsubscribe page (unsubscribe.py)."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.notifications import unsubscribe
from subgraphs.notifications.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    return create_app("notifications", schema, settings=settings or get_settings(), routes=unsubscribe.ROUTES)
