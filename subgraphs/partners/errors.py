"""Errors of the partners domain."""
from __future__ import annotations

from kernel.errors import AppError, ErrorCode


class PartnerError(AppError):
    """Base of the partners domain's failures."""


class ApiKeyNotFound(PartnerError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, key_id: int) -> None:
        super().__init__("No such API key", subject=key_id)


class InvalidApiKeyInput(PartnerError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)
