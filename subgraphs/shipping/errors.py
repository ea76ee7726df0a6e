"""Errors of the shipping domain. Invalid input (unknown carrier, a method not offered for this address and cart,
more than is left to ship) is BAD_USER_INPUT naming the field; shipping an order that is not paid (or cancelled)
is CONFLICT; a seller shipping another seller's lines is FORBIDDEN; unknown ids are NOT_FOUND."""
from __future__ import annotations

from kernel.errors import AppError, ErrorCode


class ShippingError(AppError):
    """Base of the shipping domain's failures."""


class InvalidShippingInput(ShippingError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class ZoneNotFound(ShippingError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, zone_id: int) -> None:
        super().__init__("No such shipping zone", field="zoneId", subject=zone_id)


class MethodNotFound(ShippingError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, method_id: int) -> None:
        super().__init__("No such shipping method", field="id", subject=method_id)


class OrderNotKnown(ShippingError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, order_id: int) -> None:
        super().__init__("No such order (a just-placed order may take a moment to reach shipping)",
                         field="orderId", subject=order_id)


class ShipmentNotFound(ShippingError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, shipment_id: int) -> None:
        super().__init__("No such shipment", field="id", subject=shipment_id)


class OrderNotShippable(ShippingError):
    code = ErrorCode.CONFLICT

    def __init__(self, order_id: int, status: str) -> None:
        super().__init__(f"Only a paid order can be shipped; this one is {status}", field="orderId",
                         subject=order_id)


class NotYourLines(ShippingError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "A seller ships only the lines of their own products") -> None:
        super().__init__(message)
