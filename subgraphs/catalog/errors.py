"""Errors of the catalog domain, each a subclass of the kernel class that fixes its `extensions.code`."""
from __future__ import annotations

from kernel.errors import AppError, BadUserInput, Conflict, ErrorCode, NotFound


class InvalidCursor(BadUserInput):
    def __init__(self) -> None:
        super().__init__("The 'after' cursor is malformed or belongs to another sort order", field="after")


class SkuTaken(Conflict):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"SKU already in use: {', '.join(sorted(skus))}", field="variants", subject=skus)


class DuplicateSku(Conflict):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"SKU listed more than once: {', '.join(sorted(skus))}", field="variants", subject=skus)


class CategorySlugTaken(Conflict):
    def __init__(self, slug: str) -> None:
        super().__init__(f"A category with slug {slug!r} already exists", field="slug", subject=slug)


class CategoryNotFound(NotFound):
    def __init__(self, field: str = "categoryId") -> None:
        super().__init__("Category not found", field=field)


class ProductNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Product not found")


__all__ = [
    "AppError",
    "CategoryNotFound",
    "CategorySlugTaken",
    "DuplicateSku",
    "ErrorCode",
    "InvalidCursor",
    "ProductNotFound",
    "SkuTaken",
]
