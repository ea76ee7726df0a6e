"""The events the cart domain emits. A contract only: consumers.py runs what the cart consumes."""
from __future__ import annotations

import dataclasses

from kernel.events import EventPayload, Id


@dataclasses.dataclass(frozen=True, slots=True)
class CartItemAdded(EventPayload, topic="cart.item_added"):
    """Keyed by the cart id; `quantity` is the units added now."""
    cart_id: str
    user_id: Id | None  # null for a guest cart
    variant_id: Id
    quantity: int
