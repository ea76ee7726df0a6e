"""Internal HTTP calls the cart makes: promotions' coupon quote at applyCoupon (subgraphs/promotions/coupons.py),
through the kernel's pooled PeerClient, forwarding the caller's Authorization (promotions checks the per-user
limit for a signed-in caller)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from kernel.internal_client import INTERNAL_HTTP, PeerClient, PeerUnavailable, build_internal_client, post_json

__all__ = ["INTERNAL_HTTP", "PeerClient", "PeerUnavailable", "build_internal_client", "quote_coupon"]


async def quote_coupon(http: PeerClient, promotions_service_url: str, *, code: str, subtotal: Decimal,
                       currency: str, authorization: str | None) -> dict[str, Any]:
    """POST /internal/coupons/quote: the coupon's terms and its discount for this subtotal, or an AppError
    (BAD_USER_INPUT: unknown or not applicable; CONFLICT: not active, fully redeemed, the caller's uses spent)."""
    return await post_json(http, f"{promotions_service_url.rstrip('/')}/internal/coupons/quote",
                           {"code": code, "subtotal": str(subtotal), "currency": currency},
                           authorization=authorization, what="promotions")
