"""Internal HTTP calls at checkout (docs/commerce-spine.md, "Synchronous reads at checkout", "Stock at checkout"):
the cart's checkout snapshot, a saved address from users, coupons from promotions, the shipping price from
shipping and the stock reservation from inventory, through the kernel's pooled PeerClient."""
from __future__ import annotations

from typing import Any

from kernel.internal_client import (
    PeerClient,
    PeerUnavailable,
    get_json,
    post_json,
)

__all__ = [
    "PeerClient",
    "PeerUnavailable",
    "fetch_address",
    "fetch_checkout",
    "get_json",
    "post_json",
    "quote_shipping",
    "redeem_coupon",
    "release_coupon",
    "reserve_stock",
]


async def fetch_checkout(http: PeerClient, cart_service_url: str, *, cart_id: str | None,
                         authorization: str | None) -> dict[str, Any]:
    return await get_json(http, f"{cart_service_url.rstrip('/')}/internal/checkout",
                          params={"cart_id": cart_id or ""}, authorization=authorization, what="cart")


async def fetch_address(http: PeerClient, users_service_url: str, *, address_id: int,
                        authorization: str | None) -> dict[str, Any]:
    return await get_json(http, f"{users_service_url.rstrip('/')}/internal/addresses/{address_id}",
                          authorization=authorization, what="users")


async def redeem_coupon(http: PeerClient, promotions_service_url: str, *, code: str, subtotal: Any, currency: str,
                        idempotency_key: str, order_id: int, authorization: str | None) -> dict[str, Any]:
    """POST /internal/coupons/redeem (subgraphs/promotions/coupons.py): {discount, order_id, ...} or an AppError."""
    return await post_json(http, f"{promotions_service_url.rstrip('/')}/internal/coupons/redeem",
                           {"code": code, "subtotal": str(subtotal), "currency": currency,
                            "idempotency_key": idempotency_key, "order_id": str(order_id)},
                           authorization=authorization, what="promotions")


async def release_coupon(http: PeerClient, promotions_service_url: str, *, order_id: int,
                         authorization: str | None) -> dict[str, Any]:
    """POST /internal/coupons/release: give back the caller's redemption for an order that will not exist."""
    return await post_json(http, f"{promotions_service_url.rstrip('/')}/internal/coupons/release",
                           {"order_id": str(order_id)}, authorization=authorization, what="promotions")


async def quote_shipping(http: PeerClient, shipping_service_url: str, *, address: dict[str, Any], currency: str,
                         items: list[dict[str, Any]], subtotal: Any, method_id: int | None,
                         authorization: str | None) -> dict[str, Any]:
    """POST /internal/shipping/quote (subgraphs/shipping/internal.py): {applies, method_id, price, currency, ...}
    or shipping's BAD_USER_INPUT (unknown method, not available for this address and cart)."""
    return await post_json(http, f"{shipping_service_url.rstrip('/')}/internal/shipping/quote",
                           {"address": address, "currency": currency, "items": items, "subtotal": str(subtotal),
                            "method_id": str(method_id) if method_id is not None else None},
                           authorization=authorization, what="shipping")


async def reserve_stock(http: PeerClient, inventory_service_url: str, *, order_id: int,
                        items: list[tuple[int, int]], authorization: str | None) -> dict[str, Any]:
    """POST /internal/reservations (subgraphs/inventory/internal.py): {outcome, short_variant_ids, duplicate}."""
    return await post_json(http, f"{inventory_service_url.rstrip('/')}/internal/reservations",
                           {"order_id": str(order_id),
                            "items": [{"variant_id": str(v), "quantity": q} for v, q in items]},
                           authorization=authorization, what="inventory")
