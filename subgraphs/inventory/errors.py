"""Errors of the inventory domain, each a subclass of the kernel class that fixes its `extensions.code`.

Running out of stock while reserving for an order is not an error: it is an outcome of the saga
(`inventory.out_of_stock`), returned by `service.reserve_for_order`.
"""
from __future__ import annotations

from kernel.errors import AppError, BadUserInput, Conflict, ErrorCode, NotFound


class InvalidDelta(BadUserInput):
    def __init__(self, delta: int, limit: int) -> None:
        super().__init__(f"'delta' must be a non-zero whole number between -{limit:,} and {limit:,}",
                         field="delta", subject=delta)


class InvalidReason(BadUserInput):
    def __init__(self, limit: int) -> None:
        super().__init__(f"'reason' must be 1 to {limit} characters", field="reason")


class InvalidWarehouse(BadUserInput):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class VariantNotFound(NotFound):
    def __init__(self, variant_id: int) -> None:
        super().__init__("Variant not found in inventory", field="variantId", subject=variant_id)


class WarehouseNotFound(NotFound):
    def __init__(self, warehouse_id: int) -> None:
        super().__init__("Warehouse not found", field="warehouseId", subject=warehouse_id)


class WarehouseCodeTaken(Conflict):
    def __init__(self, code: str) -> None:
        super().__init__(f"A warehouse with code {code!r} already exists", field="code", subject=code)


class StockBelowReserved(Conflict):
    """CONFLICT rather than BAD_USER_INPUT: the same delta is valid or not depending on the stock and the open
    reservations at that moment, not on the input itself; the message says how far it may go."""

    def __init__(self, *, on_hand: int, reserved: int, delta: int) -> None:
        super().__init__(
            f"Cannot apply {delta:+d}: {on_hand} on hand with {reserved} reserved; the lowest delta "
            f"allowed now is {reserved - on_hand:+d}", field="delta",
            subject={"on_hand": on_hand, "reserved": reserved})


class StockLimitExceeded(Conflict):
    def __init__(self, *, on_hand: int, delta: int) -> None:
        super().__init__(f"Cannot apply {delta:+d}: on hand {on_hand} would exceed the storable maximum",
                         field="delta", subject=on_hand)


__all__ = [
    "AppError",
    "ErrorCode",
    "InvalidDelta",
    "InvalidReason",
    "InvalidWarehouse",
    "StockBelowReserved",
    "StockLimitExceeded",
    "VariantNotFound",
    "WarehouseCodeTaken",
    "WarehouseNotFound",
]
