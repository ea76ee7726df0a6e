"""The events the catalog domain emits, keyed by the product id so one product's events stay ordered on one
partition. Nothing in the catalog consumes events.

`product.created` and `product.updated` carry the full snapshot: a consumer can rebuild its projection (cart
prices, inventory's variant list) from the latest event alone. After `product.updated`, a variant id absent
from `variants` was removed from the product. `product.deleted` is the soft delete (the product no longer
appears in reads).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from kernel.events import EventPayload, Id, Money, omitted_when_none


@dataclasses.dataclass(frozen=True, slots=True)
class VariantSnapshot:
    variant_id: Id
    sku: str
    price: Money
    currency: str
    attributes: dict[str, Any]
    weight_grams: int | None = omitted_when_none()  # shipping weight (absent from events written before it)


@dataclasses.dataclass(frozen=True, slots=True)
class ProductSnapshot(EventPayload):
    product_id: Id
    slug: str
    name: str
    brand: str | None
    description: str | None
    tags: list[str]
    category_id: Id
    seller_id: Id
    min_price: Money
    currency: str
    created_at: datetime
    updated_at: datetime  # orders snapshots: a consumer ignores one older than what it has
    variants: list[VariantSnapshot]
    # The product's category and its ancestors, nearest first (search indexes and facets on them).
    category_slugs: list[str] = dataclasses.field(default_factory=list)
    category_names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class ProductCreated(ProductSnapshot, topic="product.created"):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class ProductUpdated(ProductSnapshot, topic="product.updated"):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class ProductDeleted(EventPayload, topic="product.deleted"):
    product_id: Id
    variant_ids: list[Id]
