from __future__ import annotations

from kernel.errors import AppError, BadUserInput, Conflict, ErrorCode, NotFound, RateLimited, Unauthenticated


class WeakPassword(BadUserInput):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Password is too weak: {reason}", field="password")


class InvalidEmail(BadUserInput):
    def __init__(self) -> None:
        super().__init__("Email address is not valid", field="email")


class EmailTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("An account with this email already exists", field="email")


class InvalidCredentials(Unauthenticated):
    def __init__(self) -> None:
        super().__init__("Invalid email or password")


class AccountLocked(RateLimited):
    def __init__(self, retry_after_seconds: int) -> None:
        minutes = max(1, (retry_after_seconds + 59) // 60)
        super().__init__(f"Too many failed logins; try again in {minutes} minute(s)")
        self.retry_after_seconds = retry_after_seconds


class InvalidRefreshToken(Unauthenticated):
    def __init__(self) -> None:
        super().__init__("Refresh token is invalid or expired")


class RefreshTokenReused(Unauthenticated):
    """A rotated refresh token came back: someone holds a copy. The whole family is revoked."""

    def __init__(self) -> None:
        super().__init__("Refresh token was already used; all sessions of this login were revoked")


class UserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("User not found")


class AddressNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Address not found")


__all__ = [
    "AccountLocked",
    "AddressNotFound",
    "AppError",
    "EmailTaken",
    "ErrorCode",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidRefreshToken",
    "RefreshTokenReused",
    "UserNotFound",
    "WeakPassword",
]
