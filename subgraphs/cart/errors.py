"""Errors of the cart domain, each a subclass of the kernel class that fixes its `extensions.code`."""
from __future__ import annotations

from kernel.errors import AppError, BadUserInput, Conflict, ErrorCode, Forbidden, NotFound, Unauthenticated


class OutOfStock(AppError):
    code = ErrorCode.OUT_OF_STOCK

    def __init__(self, variant_id: int, available: int) -> None:
        super().__init__(f"Only {available} unit(s) of this variant are available", field="quantity",
                         subject={"variant_id": variant_id, "available": available})
        self.available = available


class InvalidQuantity(BadUserInput):
    def __init__(self, maximum: int) -> None:
        super().__init__(f"'quantity' must be between 1 and {maximum}", field="quantity")


class QuantityLimit(BadUserInput):
    def __init__(self, maximum: int) -> None:
        super().__init__(f"A cart line holds at most {maximum} units", field="quantity")


class CartFull(BadUserInput):
    def __init__(self, max_lines: int) -> None:
        super().__init__(f"A cart holds at most {max_lines} different items", field="variantId")


class CartIdRequired(BadUserInput):
    def __init__(self) -> None:
        super().__init__("'cartId' is required without a signed-in user", field="cartId")


class CartNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Cart not found", field="cartId")


class CartItemNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Cart item not found", field="itemId")


class VariantNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Product variant not found", field="variantId")


class CartOwnedByAnotherUser(Forbidden):
    def __init__(self) -> None:
        super().__init__("This cart belongs to another user")


class CartRequiresLogin(Unauthenticated):
    def __init__(self) -> None:
        super().__init__("Sign in to use this cart")


class CartNotPurchasable(Conflict):
    """Checkout refused: a line's variant is no longer sold (or the lines mix currencies)."""

    def __init__(self, message: str, variant_ids: list[int]) -> None:
        super().__init__(message, subject=variant_ids)


class InvalidCouponCode(BadUserInput):
    def __init__(self) -> None:
        super().__init__("'code' must be 3..32 characters: letters, digits, '-' or '_'", field="code")


__all__ = [
    "AppError",
    "CartFull",
    "CartIdRequired",
    "CartItemNotFound",
    "CartNotFound",
    "CartNotPurchasable",
    "CartOwnedByAnotherUser",
    "CartRequiresLogin",
    "ErrorCode",
    "InvalidCouponCode",
    "InvalidQuantity",
    "OutOfStock",
    "QuantityLimit",
    "VariantNotFound",
]
