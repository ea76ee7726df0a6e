"""What every search backend receives and answers: the parsed request, the page, the facets, suggestions.

The service (service.py) validates and parses the shopper's input once; a backend (postgres.py, the
default, or elasticsearch.py when ELASTICSEARCH_URL is set) only executes it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

Sort = Literal["RELEVANCE", "PRICE_ASC", "PRICE_DESC", "NEWEST"]
SuggestionKind = Literal["PRODUCT", "CATEGORY", "BRAND"]

# Price facet buckets (lower bound inclusive, upper exclusive; None: open).
PRICE_BUCKETS: tuple[tuple[Decimal, Decimal | None], ...] = (
    (Decimal(0), Decimal(25)), (Decimal(25), Decimal(50)), (Decimal(50), Decimal(100)),
    (Decimal(100), Decimal(200)), (Decimal(200), Decimal(500)), (Decimal(500), None))
RESERVED_FACETS = ("category", "brand", "price", "inStock")


def price_bucket_key(low: Decimal, high: Decimal | None) -> str:
    return f"{low}-{high}" if high is not None else f"{low}-"


def price_bucket_label(low: Decimal, high: Decimal | None) -> str:
    return f"{low} - {high}" if high is not None else f"{low} and above"


@dataclasses.dataclass(frozen=True, slots=True)
class SearchFilters:
    category_slugs: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()  # folded (lower case, no accents)
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    in_stock: bool = False
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.category_slugs or self.brands or self.price_min is not None or self.price_max is not None
                    or self.in_stock or self.attributes)


@dataclasses.dataclass(frozen=True, slots=True)
class Clause:
    """One query word (or a synonym's span of words): the shopper's words, and what else they may mean."""
    words: tuple[str, ...]              # the shopper's folded words
    synonyms: tuple[tuple[str, ...], ...] = ()  # other phrasings (each a tuple of words)


@dataclasses.dataclass(frozen=True, slots=True)
class SearchRequest:
    text: str                           # folded query text ('' in browse mode)
    clauses: tuple[Clause, ...]
    sku: str | None                     # the whole query, when it could be an SKU
    filters: SearchFilters
    sort: Sort
    offset: int
    limit: int


@dataclasses.dataclass(frozen=True, slots=True)
class Highlight:
    field: str
    snippet: str


@dataclasses.dataclass(frozen=True, slots=True)
class ProductCard:
    """What a result list shows of a product, as the index holds it. The search subgraph answers these
    `Product` fields itself (shareable with catalog), so a results page needs no catalog call for them."""
    slug: str
    name: str
    brand: str | None
    min_price: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class Hit:
    product_id: int
    card: ProductCard
    highlights: tuple[Highlight, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Facet:
    name: str
    values: tuple[FacetValue, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class SearchPage:
    hits: tuple[Hit, ...]
    total: int
    facets: tuple[Facet, ...]
    did_you_mean: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Suggestion:
    text: str
    kind: SuggestionKind
    product_id: int | None = None
    card: ProductCard | None = None  # with product_id


@dataclasses.dataclass(frozen=True, slots=True)
class IndexDocument:
    """A product as the index holds it (built from catalog's snapshot and the known stock)."""
    product_id: int
    slug: str
    name: str
    brand: str | None
    description: str | None
    tags: tuple[str, ...]
    category_id: int
    category_slugs: tuple[str, ...]
    category_names: tuple[str, ...]
    skus: tuple[str, ...]
    attributes: dict[str, list[str]]
    min_price: Decimal
    currency: str
    in_stock: bool
    popularity: int
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"product_id": self.product_id, "slug": self.slug, "name": self.name, "brand": self.brand,
                "description": self.description, "tags": list(self.tags), "category_id": self.category_id,
                "category_slugs": list(self.category_slugs), "category_names": list(self.category_names),
                "skus": list(self.skus), "attributes": self.attributes, "min_price": str(self.min_price),
                "currency": self.currency, "in_stock": self.in_stock, "popularity": self.popularity,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


class SearchEngine(Protocol):
    """A search backend. Postgres's reads the search schema through the request's session; Elasticsearch's
    keeps its own index, written by the same consumers (after the Postgres projection)."""

    name: str

    async def search(self, session: Any, request: SearchRequest) -> SearchPage: ...

    async def suggest(self, session: Any, prefix: SearchRequest, first: int) -> list[Suggestion]: ...

    async def index(self, documents: list[IndexDocument]) -> None: ...

    async def remove(self, product_ids: list[int]) -> None: ...

    async def set_synonyms(self, groups: Sequence[Sequence[str]]) -> None: ...

    async def rebuild(self, documents: Sequence[IndexDocument], groups: Sequence[Sequence[str]]) -> str: ...
