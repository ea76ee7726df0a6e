"""ASGI app of the payments subgraph: GraphQL, and the providers' webhooks (webhooks.py)."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.payments.schema import schema
from subgraphs.payments.webhooks import ROUTES


def build_app(settings: Settings | None = None) -> Any:
    return create_app("payments", schema, settings=settings, routes=ROUTES)
