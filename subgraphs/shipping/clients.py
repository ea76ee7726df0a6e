"""Internal HTTP calls the shipping domain makes, through the kernel's pooled PeerClient: the cart's checkout
snapshot (the same `/internal/checkout` orders reads at placeOrder) to price `shippingMethods(cartId, ...)`."""
from __future__ import annotations

from typing import Any

from kernel.internal_client import PeerClient, PeerUnavailable, get_json

__all__ = ["PeerClient", "PeerUnavailable", "fetch_checkout"]


async def fetch_checkout(http: PeerClient, cart_service_url: str, *, cart_id: str | None,
                         authorization: str | None) -> dict[str, Any]:
    """{cart_id, user_id, items: [{variant_id, quantity, unit_price, ...}], subtotal, currency}, or the cart's
    own refusal (NOT_FOUND, FORBIDDEN, ...)."""
    return await get_json(http, f"{cart_service_url.rstrip('/')}/internal/checkout",
                          params={"cart_id": cart_id or ""}, authorization=authorization, what="cart")
