"""Internal HTTP calls the cart makes, through the kernel's pooled PeerClient: promotions' coupon quote at
applyCoupon (subgraphs/promotions/coupons.py), forwarding the caller's Authorization (promotions checks the
per-user limit for a signed-in caller); and, for a variant its projections have not heard of yet (an event
still on its way), the catalog's and inventory's own answers through their `_entities` endpoints."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from kernel.internal_client import (
    PeerClient,
    PeerUnavailable,
    fetch_entity,
    post_json,
)

__all__ = ["PeerClient", "PeerUnavailable", "fetch_variant_product",
           "fetch_variant_stock", "quote_coupon"]

# The whole product: the projection stores a product's variant list, and a partial one would mark the
# missing variants gone.
_VARIANT_PRODUCT_QUERY = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on ProductVariant { id product { id name variants { id sku price { amount currency } } } } } }"""
_VARIANT_STOCK_QUERY = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on ProductVariant { stock { available } } } }"""


async def fetch_variant_product(http: PeerClient, catalog_url: str, variant_id: int) -> dict[str, Any] | None:
    """{id, product: {id, name, variants: [{id, sku, price: {amount, currency}}]}}, or None for a variant the
    catalog does not sell (unknown, or its product deleted)."""
    return await fetch_entity(http, catalog_url, "ProductVariant", variant_id, _VARIANT_PRODUCT_QUERY, what="catalog")


async def fetch_variant_stock(http: PeerClient, inventory_url: str, variant_id: int) -> int | None:
    """The variant's available units as inventory knows them now (None when it does not answer for it)."""
    entity = await fetch_entity(http, inventory_url, "ProductVariant", variant_id, _VARIANT_STOCK_QUERY,
                                what="inventory")
    stock = (entity or {}).get("stock")
    return int(stock["available"]) if isinstance(stock, dict) else None


async def quote_coupon(http: PeerClient, promotions_service_url: str, *, code: str, subtotal: Decimal,
                       currency: str, authorization: str | None) -> dict[str, Any]:
    """POST /internal/coupons/quote: the coupon's terms and its discount for this subtotal, or an AppError
    (BAD_USER_INPUT: unknown or not applicable; CONFLICT: not active, fully redeemed, the caller's uses spent)."""
    return await post_json(http, f"{promotions_service_url.rstrip('/')}/internal/coupons/quote",
                           {"code": code, "subtotal": str(subtotal), "currency": currency},
                           authorization=authorization, what="promotions")
