"""Errors of the recommendations domain: invalid input is BAD_USER_INPUT naming the field, an unknown or deleted
product NOT_FOUND, a guest without a session UNAUTHENTICATED, too many interactions RATE_LIMITED; for experiments
(ADMIN), an unknown key NOT_FOUND and a key taken CONFLICT."""
from __future__ import annotations

from kernel.errors import AppError, ErrorCode


class RecommendationError(AppError):
    """Base of the recommendations domain's failures."""


class InvalidRecommendationInput(RecommendationError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class ProductNotFound(RecommendationError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, product_id: int) -> None:
        super().__init__("No such product", field="productId", subject=product_id)


class ShopperUnknown(RecommendationError):
    code = ErrorCode.UNAUTHENTICATED

    def __init__(self) -> None:
        super().__init__("Sign in, or give the guest's sessionId")


class InteractionsRateLimited(RecommendationError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self) -> None:
        super().__init__("Too many interactions; try again in a minute")


class ExperimentNotFound(RecommendationError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, key: str) -> None:
        super().__init__("No such experiment", field="key", subject=key)


class ExperimentKeyTaken(RecommendationError):
    code = ErrorCode.CONFLICT

    def __init__(self, key: str) -> None:
        super().__init__(f"An experiment with the key '{key}' exists", field="key", subject=key)
