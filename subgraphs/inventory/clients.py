"""Internal HTTP calls inventory makes, through the kernel's pooled PeerClient: for a variant it has not heard of
yet (catalog's product.created still on its way), the catalog's own answer through its `_entities` endpoint,
as the cart does."""
from __future__ import annotations

from kernel.internal_client import PeerClient, PeerUnavailable, fetch_entity

__all__ = ["PeerClient", "PeerUnavailable", "fetch_variant_product_id"]

_VARIANT_QUERY = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on ProductVariant { product { id } } } }"""


async def fetch_variant_product_id(http: PeerClient, catalog_url: str, variant_id: int) -> int | None:
    """The id of the variant's product, or None for a variant the catalog does not sell (unknown, or its
    product deleted). PeerUnavailable when the catalog does not answer or not in the `_entities` shape."""
    entity = await fetch_entity(http, catalog_url, "ProductVariant", variant_id, _VARIANT_QUERY, what="catalog")
    try:
        return None if entity is None else int(entity["product"]["id"])
    except (KeyError, TypeError, ValueError):
        raise PeerUnavailable("catalog: unexpected variant answer") from None
