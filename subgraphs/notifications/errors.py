"""Errors of the notifications domain. A notification of another user is NOT_FOUND like an unknown id (ids reveal
nothing); turning off what cannot be turned off (transactional email) and malformed input are BAD_USER_INPUT."""
from __future__ import annotations

from kernel.errors import AppError, ErrorCode


class NotificationError(AppError):
    """Base of the notifications domain's failures."""


class InvalidNotificationInput(NotificationError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class NotificationNotFound(NotificationError):
    code = ErrorCode.NOT_FOUND

    def __init__(self) -> None:
        super().__init__("No such notification", field="id")


class FlashSaleNotFound(NotificationError):
    code = ErrorCode.NOT_FOUND

    def __init__(self) -> None:
        super().__init__("No such flash sale", field="saleId")


class FlashSaleAlreadyStarted(NotificationError):
    code = ErrorCode.CONFLICT

    def __init__(self) -> None:
        super().__init__("This flash sale has already started", field="saleId")
