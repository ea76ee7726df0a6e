"""Internal HTTP calls the reviews domain makes, through the kernel's pooled PeerClient: for a product its
projection has not heard of yet (a product.created still on its way), the catalog's own answer through its
`_entities` endpoint, as the cart does for a variant."""
from __future__ import annotations

from typing import Any

from kernel.internal_client import PeerClient, PeerUnavailable, fetch_entity

__all__ = ["PeerClient", "PeerUnavailable", "fetch_product"]

_PRODUCT_QUERY = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id seller { id } } } }"""


async def fetch_product(http: PeerClient, catalog_url: str, product_id: int) -> dict[str, Any] | None:
    """{id, seller: {id} | null}, or None for a product the catalog does not sell (unknown, or deleted).
    PeerUnavailable when the answer is not the `_entities` shape."""
    return await fetch_entity(http, catalog_url, "Product", product_id, _PRODUCT_QUERY, what="catalog")
