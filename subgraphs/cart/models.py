"""The cart's records. The store is Redis (see repository.py for the key layout), so these are plain
value objects read back from a Lua script, not SQLAlchemy tables: the `cart` Postgres schema holds only
the kernel's outbox and inbox."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from kernel.money import coupon_discount

DEFAULT_CURRENCY = "USD"  # an empty cart still answers `subtotal`; one store currency is the norm


@dataclasses.dataclass(frozen=True, slots=True)
class CartLine:
    variant_id: int
    quantity: int
    position: int  # order in which lines were first added
    # From the catalog projection; None when the projection never heard of the variant.
    product_id: int | None
    name: str | None
    sku: str | None
    unit_price: Decimal | None
    currency: str | None
    gone: bool  # deleted product or variant removed from its product
    stock: int  # from the inventory projection; no projection = 0

    @property
    def item_id(self) -> int:
        # One line per variant, so the variant id is a stable, unique line id within a cart.
        return self.variant_id

    @property
    def purchasable(self) -> bool:
        """The variant is still sold: known to the catalog projection, priced and not deleted."""
        return not self.gone and self.product_id is not None and self.unit_price is not None

    @property
    def available(self) -> bool:
        """Purchasable now, with enough stock for this line's quantity."""
        return self.purchasable and self.stock >= self.quantity

    @property
    def line_total(self) -> Decimal:
        return (self.unit_price or Decimal(0)) * self.quantity


@dataclasses.dataclass(frozen=True, slots=True)
class AppliedCoupon:
    """The terms of the coupon applied to a cart, as promotions quoted them at applyCoupon (coupons are never
    edited, so the terms stay true). The cart prices its own discount from them for display; placeOrder's
    redemption in promotions is what counts, and may still refuse (e.g. the coupon was used up meanwhile)."""
    code: str
    kind: str  # PERCENT | FIXED
    value: Decimal
    currency: str
    min_subtotal: Decimal
    starts_at: datetime
    ends_at: datetime | None

    def applies(self, subtotal: Decimal, currency: str, now: datetime) -> bool:
        return (currency == self.currency and subtotal >= self.min_subtotal and self.starts_at <= now
                and (self.ends_at is None or now < self.ends_at))

    def discount(self, subtotal: Decimal, currency: str, now: datetime) -> Decimal:
        """The rule promotions redeems with (kernel.money); 0 while the cart does not qualify."""
        if not self.applies(subtotal, currency, now):
            return Decimal("0.00")
        return coupon_discount(self.kind, self.value, subtotal)


@dataclasses.dataclass(frozen=True, slots=True)
class CartView:
    id: str
    user_id: int | None  # None: a guest cart
    updated_at: datetime
    lines: tuple[CartLine, ...]
    coupon: AppliedCoupon | None = None

    @property
    def currency(self) -> str:
        for line in self.lines:
            if line.purchasable and line.currency:
                return line.currency
        return DEFAULT_CURRENCY

    @property
    def subtotal(self) -> Decimal:
        """Sum of the lines still sold, in the cart's currency (a deleted variant cannot be bought)."""
        currency = self.currency
        return sum((line.line_total for line in self.lines if line.purchasable and line.currency == currency),
                   Decimal(0))

    def discount(self, now: datetime | None = None) -> Decimal:
        if self.coupon is None:
            return Decimal("0.00")
        return self.coupon.discount(self.subtotal, self.currency, now or datetime.now(UTC))

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


def datetime_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
