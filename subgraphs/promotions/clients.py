"""Internal HTTP calls promotions makes, through the kernel's pooled PeerClient: the catalog's facts about a
variant when a sale is created (its `_entities` endpoint), and orders' creation of a flash-sale order on the
purchase's request path (POST /internal/flash-sale-orders, subgraphs/orders/internal.py)."""
from __future__ import annotations

from typing import Any

from kernel.internal_client import PeerClient, fetch_entity, post_json
from subgraphs.promotions.events import FlashSalePurchased

_VARIANT_QUERY = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on ProductVariant { id sku price { amount currency } product { id name } } } }"""


async def fetch_variant(http: PeerClient, catalog_url: str, variant_id: int) -> dict[str, Any] | None:
    """{id, sku, price: {amount, currency}, product: {id, name}}, or None for a variant the catalog does not
    know. PeerUnavailable when the answer is not the `_entities` shape."""
    return await fetch_entity(http, catalog_url, "ProductVariant", variant_id, _VARIANT_QUERY, what="catalog")


async def create_flash_sale_order(http: PeerClient, orders_url: str, reservation: FlashSalePurchased, *,
                                  authorization: str | None) -> dict[str, Any]:
    """{order_id, number, status, created}; idempotent per reservation id."""
    return await post_json(http, f"{orders_url.rstrip('/')}/internal/flash-sale-orders", reservation.to_payload(),
                           authorization=authorization, what="orders")
