"""Internal HTTP reads at checkout (docs/commerce-spine.md, "Synchronous reads at checkout"): the cart's
checkout snapshot and a saved address from users, through the kernel's pooled PeerClient."""
from __future__ import annotations

from typing import Any

from kernel.internal_client import (
    INTERNAL_HTTP,
    PeerClient,
    PeerUnavailable,
    build_internal_client,
    get_json,
    post_json,
)

__all__ = [
    "INTERNAL_HTTP",
    "PeerClient",
    "PeerUnavailable",
    "build_internal_client",
    "fetch_address",
    "fetch_checkout",
    "get_json",
    "post_json",
    "redeem_coupon",
    "release_coupon",
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
