"""The one place where exceptions become GraphQL `extensions.code` values.

Every domain raises `AppError` subclasses (its own `errors.py`); anything else reaching the
GraphQL layer is an internal error: logged with its traceback, shown to the client as a bare
INTERNAL_SERVER_ERROR with no detail.
"""
from __future__ import annotations

import enum
import logging
from typing import Any

from graphql import GraphQLError

log = logging.getLogger("nexuscart.errors")


class ErrorCode(str, enum.Enum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


class AppError(Exception):
    """An expected failure with a client-facing message; `subject` keeps the offending object."""

    code: ErrorCode = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None, field: str | None = None,
                 subject: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.subject = subject


class BadUserInput(AppError):
    code = ErrorCode.BAD_USER_INPUT


class Unauthenticated(AppError):
    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, message: str = "Authentication required") -> None:
        super().__init__(message)


class Forbidden(AppError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "You are not allowed to do this") -> None:
        super().__init__(message)


class NotFound(AppError):
    code = ErrorCode.NOT_FOUND


class Conflict(AppError):
    code = ErrorCode.CONFLICT


class RateLimited(AppError):
    code = ErrorCode.RATE_LIMITED


class OutOfStock(AppError):
    code = ErrorCode.OUT_OF_STOCK


# The HTTP status an expected failure travels with between services (kernel/internal_server.py answers with it,
# kernel/internal_client.py raises the same error again from the body's code). One table for both sides.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_USER_INPUT: 400, ErrorCode.UNAUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409, ErrorCode.OUT_OF_STOCK: 409, ErrorCode.RATE_LIMITED: 429,
}
# For a body without a code (a proxy's error page): the status alone.
CODE_FOR_STATUS: dict[int, ErrorCode] = {400: ErrorCode.BAD_USER_INPUT, 401: ErrorCode.UNAUTHENTICATED,
                                         403: ErrorCode.FORBIDDEN, 404: ErrorCode.NOT_FOUND,
                                         409: ErrorCode.CONFLICT, 429: ErrorCode.RATE_LIMITED}


_INTERNAL_MESSAGE = "Internal server error"
# graphql-core's wording when input coercion fails; any other ValueError/TypeError is our bug.
_COERCION_PREFIXES = ("Variable '$", "Argument '", "Expected value of type", "Expected type")


def to_client_error(error: GraphQLError) -> GraphQLError:
    """Rewrite one execution error into its client-safe form with a stable code."""
    original = error.original_error
    if isinstance(original, AppError):
        extensions: dict[str, Any] = {"code": original.code.value}
        if original.field:
            extensions["field"] = original.field
        return GraphQLError(original.message, nodes=error.nodes, path=error.path,
                            extensions=extensions)
    if original is None or isinstance(original, GraphQLError):
        # Raised by graphql-core itself: syntax, validation or variable coercion (which wraps the
        # scalar's own GraphQLError). The message describes the client's document, not our internals.
        code = (error.extensions or {}).get("code")
        if code is None:
            message = error.message
            if message.startswith("Syntax Error"):
                code = ErrorCode.GRAPHQL_PARSE_FAILED.value
            elif message.startswith("Variable '$") or "got invalid value" in message:
                code = ErrorCode.BAD_USER_INPUT.value
            else:
                code = ErrorCode.GRAPHQL_VALIDATION_FAILED.value
        return GraphQLError(error.message, nodes=error.nodes, path=error.path,
                            extensions={**(error.extensions or {}), "code": code})
    if (isinstance(original, (ValueError, TypeError)) and not error.path
            and error.message.startswith(_COERCION_PREFIXES)):
        # A custom scalar refusing a literal or variable (e.g. malformed JSON input): the client's input.
        return GraphQLError(error.message, nodes=error.nodes,
                            extensions={"code": ErrorCode.BAD_USER_INPUT.value})
    log.error("unhandled error in resolver", exc_info=original,
              extra={"graphql_path": list(error.path or [])})
    return GraphQLError(_INTERNAL_MESSAGE, nodes=error.nodes, path=error.path,
                        extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR.value})
