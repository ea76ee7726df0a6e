"""Errors of the reviews domain. Invalid input is BAD_USER_INPUT naming the field; a review the caller may not
see (another user's PENDING or REJECTED one) is NOT_FOUND like an unknown id, so ids reveal nothing; acting on a
review the caller can see but may not change is FORBIDDEN; a second review of a product, a second seller reply
and too many writes are CONFLICT, CONFLICT and RATE_LIMITED."""
from __future__ import annotations

from kernel.errors import AppError, ErrorCode


class ReviewError(AppError):
    """Base of the reviews domain's failures."""


class InvalidReviewInput(ReviewError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class ReviewNotFound(ReviewError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, review_id: int) -> None:
        super().__init__("No such review", field="id", subject=review_id)


class ProductNotFound(ReviewError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, product_id: int) -> None:
        super().__init__("No such product", field="productId", subject=product_id)


class AlreadyReviewed(ReviewError):
    code = ErrorCode.CONFLICT

    def __init__(self, product_id: int) -> None:
        super().__init__("You have already reviewed this product; edit that review instead", field="productId",
                         subject=product_id)


class NotYourReview(ReviewError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "Only the author of this review may do this") -> None:
        super().__init__(message)


class OwnReviewVote(ReviewError):
    code = ErrorCode.FORBIDDEN

    def __init__(self) -> None:
        super().__init__("You cannot vote on your own review")


class ReviewNotPublished(ReviewError):
    code = ErrorCode.CONFLICT

    def __init__(self, review_id: int) -> None:
        super().__init__("Only published reviews take votes", field="id", subject=review_id)


class NotTheSeller(ReviewError):
    code = ErrorCode.FORBIDDEN

    def __init__(self) -> None:
        super().__init__("Only the seller of this product may reply to its reviews")


class AlreadyReplied(ReviewError):
    code = ErrorCode.CONFLICT

    def __init__(self, review_id: int) -> None:
        super().__init__("This review already has a reply", field="id", subject=review_id)


class ReviewWritesRateLimited(ReviewError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self) -> None:
        super().__init__("Too many review changes; try again in a minute")
