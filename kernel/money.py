"""Money rules, once: amounts are Decimal with 2 places (never float), currencies ISO 4217 codes.

On the wire (GraphQL `Money`, event payloads, internal calls) an amount is a decimal string with exactly two
places, e.g. "19.99"; `format_money` writes it and `parse_amount` reads it back from any client.
"""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from kernel.errors import BadUserInput

CENT = Decimal("0.01")
# The largest amount any domain stores (numeric(14,2) columns); a price is further bounded by the catalog.
MAX_AMOUNT = Decimal("999999999999.99")
# The largest price of a product variant (the catalog's numeric(12,2)); a flash sale's price is one too.
MAX_PRICE = Decimal("9999999999.99")
# ASCII digits only, bounded so Decimal never overflows a quantize.
_DECIMAL_TEXT = re.compile(r"-?[0-9]{1,13}(\.[0-9]{1,12})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUPON_CODE = re.compile(r"[A-Z0-9_-]{3,32}")  # always fullmatch: `^...$` would accept "USD\n"


def format_money(amount: Decimal) -> str:
    """The wire form of an amount: a decimal string with exactly two places."""
    return str(amount.quantize(CENT))


def is_currency(code: object) -> bool:
    """An ISO 4217 alphabetic code: exactly three ASCII capitals, nothing before or after."""
    return isinstance(code, str) and _CURRENCY.fullmatch(code) is not None


def check_currency(code: object, *, field: str = "currency") -> str:
    if not is_currency(code):
        raise BadUserInput(f"'{field}' must be an ISO 4217 code such as 'USD'", field=field)
    return str(code)


def parse_amount(value: object, *, field: str, maximum: Decimal = MAX_AMOUNT, allow_zero: bool = True) -> Decimal:
    """A client's amount (a decimal string or an int): ASCII digits, at most 2 decimal places, 0..maximum
    (or 0 excluded). Anything else is BAD_USER_INPUT naming `field`."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _DECIMAL_TEXT.fullmatch(text):
        raise BadUserInput(f"'{field}' must be a decimal amount such as \"19.99\"", field=field)
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise BadUserInput(f"'{field}' must be a decimal amount", field=field) from None
    if amount < 0 or (not allow_zero and amount == 0):
        raise BadUserInput(f"'{field}' must be {'at least 0' if allow_zero else 'greater than 0'}", field=field)
    if amount > maximum:  # before quantize, which raises on numbers too long for the context
        raise BadUserInput(f"'{field}' must be at most {maximum}", field=field)
    if amount != amount.quantize(CENT):
        raise BadUserInput(f"'{field}' must have at most 2 decimal places", field=field)
    return amount.quantize(CENT)


def coupon_discount(kind: str, value: Decimal, subtotal: Decimal) -> Decimal:
    """PERCENT: that share of the subtotal, rounded half-up to cents; FIXED: the amount. Never above the
    subtotal. Promotions redeems with it and the cart displays with it, so both always agree."""
    if kind == "PERCENT":
        amount = (subtotal * value / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        amount = value
    return min(amount, subtotal).quantize(CENT)


def normalize_coupon_code(raw: str | None) -> str | None:
    """A coupon code as promotions stores it (codes are case-insensitive: trimmed, upper-case), or None when
    `raw` cannot be a code (3..32 letters, digits, '-' or '_'). The cart, orders and promotions all apply it,
    each raising its own error for None."""
    code = (raw or "").strip().upper()
    return code if _COUPON_CODE.fullmatch(code) else None
