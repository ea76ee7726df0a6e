"""Errors of the promotions domain. Expected purchase outcomes (sold out, limit reached, a bad token) are a
status in the FlashSalePurchase payload, not errors; these are for invalid input, auth and not-found."""
from __future__ import annotations

from kernel.errors import AppError, ErrorCode


class PromotionError(AppError):
    """Base of the promotions domain's failures."""


class FlashSaleNotFound(PromotionError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, sale_id: int) -> None:
        super().__init__("No such flash sale", subject=sale_id)


class VariantNotFound(PromotionError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, variant_id: int) -> None:
        super().__init__("No such product variant", field="variantId", subject=variant_id)


class FlashSaleNotOpen(PromotionError):
    """A purchase token is asked for outside the window it may be issued in."""
    code = ErrorCode.CONFLICT

    def __init__(self, sale_id: int, reason: str) -> None:
        super().__init__(reason, subject=sale_id)


class TokenRateLimited(PromotionError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, sale_id: int) -> None:
        super().__init__("Too many purchase tokens requested for this sale; try again in a minute", subject=sale_id)


# ---- coupons ----------------------------------------------------------------------------------------------
# Invalid input (a malformed or unknown code, a cart that does not qualify) is BAD_USER_INPUT; a refusal that
# depends on the coupon's state (not started, expired, fully redeemed, the caller's uses spent) is CONFLICT;
# a duplicate code on creation is CONFLICT. The internal endpoints answer the same codes as {code, message}.

class CouponError(PromotionError):
    """Base of the coupon failures; `field` names the input the client can fix."""


class InvalidCouponInput(CouponError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class CouponNotFound(CouponError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, code: str) -> None:
        super().__init__("Unknown coupon code", field="code", subject=code)


class CouponCodeTaken(CouponError):
    code = ErrorCode.CONFLICT

    def __init__(self, code: str) -> None:
        super().__init__("A coupon with this code already exists", field="code", subject=code)


class CouponNotApplicable(CouponError):
    """The cart or order does not qualify (below the minimum subtotal, another currency)."""
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, field="code", subject=code)


class CouponUnavailable(CouponError):
    """The coupon's state refuses it: not started, expired, fully redeemed, or the caller's uses are spent."""
    code = ErrorCode.CONFLICT

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, field="code", subject=code)


class CouponKeyReused(CouponError):
    code = ErrorCode.CONFLICT

    def __init__(self) -> None:
        super().__init__("This idempotencyKey already redeemed a different coupon", field="idempotencyKey")
