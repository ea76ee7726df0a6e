"""Errors of the search domain: every refusal is the shopper's input (BAD_USER_INPUT) or a role (FORBIDDEN)."""
from __future__ import annotations

from kernel.errors import BadUserInput


class InvalidSearch(BadUserInput):
    """A query, filter, cursor or page size search cannot run; the message says which and why."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)
