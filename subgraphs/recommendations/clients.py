"""Internal HTTP calls recommendations makes, through the kernel's pooled PeerClient: for a product its projection
has not heard of yet (catalog's product.created still on its way), the catalog's own answer through its
`_entities` endpoint, as the cart and reviews do."""
from __future__ import annotations

from kernel.internal_client import PeerClient, PeerUnavailable, fetch_entity

__all__ = ["PeerClient", "PeerUnavailable", "catalog_sells"]

_PRODUCT_QUERY = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id } } }"""


async def catalog_sells(http: PeerClient, catalog_url: str, product_id: int) -> bool:
    """Whether the catalog sells the product now (False: unknown, or deleted). PeerUnavailable when the
    catalog does not answer, or not in the `_entities` shape."""
    return await fetch_entity(http, catalog_url, "Product", product_id, _PRODUCT_QUERY, what="catalog") is not None
