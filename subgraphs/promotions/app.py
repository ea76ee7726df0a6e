"""ASGI app of the promotions subgraph, plus its internal endpoints (internal.py: what the cart
and orders ask of coupons). Flash-sale purchases create their order through orders' internal endpoint, and
the catalog is asked for a variant's name and price when a sale is created, through the process's peer client."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings
from subgraphs.promotions import internal
from subgraphs.promotions.purchase_fast_path import PurchaseFastPath
from subgraphs.promotions.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    app = create_app("promotions", schema, settings=settings, routes=internal.ROUTES)
    # Inside the correlation/metrics middleware, in front of the GraphQL endpoint: purchaseFlashSale's own path.
    app.app = PurchaseFastPath(app.app, app.app.state.resources, schema.graphql_schema)
    return app
