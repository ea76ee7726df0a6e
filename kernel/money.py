"""Money rules more than one domain applies. Amounts are Decimal with 2 places, never float."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def coupon_discount(kind: str, value: Decimal, subtotal: Decimal) -> Decimal:
    """PERCENT: that share of the subtotal, rounded half-up to cents; FIXED: the amount. Never above the
    subtotal. Promotions redeems with it and the cart displays with it, so both always agree."""
    if kind == "PERCENT":
        amount = (subtotal * value / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        amount = value
    return min(amount, subtotal).quantize(CENT)
