"""Tables and records of the recommendations domain (schema `recommendations`; the DDL is migrations/*.sql)."""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, MetaData, Numeric, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

SCHEMA = "recommendations"
metadata = MetaData(schema=SCHEMA)

interactions = Table(
    "interactions", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("user_id", BigInteger),
    Column("session_id", Text),
    Column("product_id", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("source", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

products = Table(
    "products", metadata,
    Column("product_id", BigInteger, primary_key=True),
    Column("category_id", BigInteger),
    Column("brand", Text),
    Column("price", Numeric(14, 2)),
    Column("slug", Text),
    Column("name", Text),
    Column("currency", Text),
    Column("tags", ARRAY(Text), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("in_stock", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)

variants = Table(
    "variants", metadata,
    Column("variant_id", BigInteger, primary_key=True),
    Column("product_id", BigInteger),
    Column("in_stock", Boolean, nullable=False),
)

session_links = Table(
    "session_links", metadata,
    Column("session_id", Text, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
)

# A/B experiments of recommendedForYou (DDL: migrations/0002_experiments.sql).
experiments = Table(
    "experiments", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("key", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("variants", JSONB, nullable=False),
    Column("created_by", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
)

experiment_exposures = Table(
    "experiment_exposures", metadata,
    Column("experiment_id", BigInteger, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("variant", Text, nullable=False),
    Column("exposed_at", DateTime(timezone=True), nullable=False),
)


class InteractionKind(str, enum.Enum):
    """What a shopper did with a product. PURCHASE is learned from orders (order.paid), never tracked."""
    VIEW = "VIEW"
    CLICK = "CLICK"
    ADD_TO_CART = "ADD_TO_CART"
    WISHLIST = "WISHLIST"
    PURCHASE = "PURCHASE"


@dataclasses.dataclass(frozen=True, slots=True)
class ProductCard:
    """What a list of recommendations shows of a product: these `Product` fields come from this domain's copy of
    the catalog (`@provides` in schema.py), so a list needs no catalog call."""
    slug: str
    name: str
    brand: str | None
    min_price: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class ProductRecord:
    product_id: int
    category_id: int | None
    brand: str | None
    price: float | None
    tags: tuple[str, ...]
    deleted: bool
    in_stock: bool
    card: ProductCard | None = None  # None for a row from before cards were kept, until its next snapshot

    @property
    def available(self) -> bool:
        """What may be recommended: sold, in stock, and with a card to show."""
        return self.in_stock and not self.deleted and self.card is not None


class ExperimentStatus(str, enum.Enum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


@dataclasses.dataclass(frozen=True, slots=True)
class VariantSpec:
    """A variant as stored (checked by experiments.check_variants)."""
    name: str
    weight: float
    model_version: str | None = None
    parameters: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "model_version": self.model_version,
                "parameters": self.parameters}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VariantSpec:
        return cls(name=data["name"], weight=float(data["weight"]), model_version=data.get("model_version"),
                   parameters=data.get("parameters"))


@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentRecord:
    id: int
    key: str
    status: ExperimentStatus
    variants: tuple[VariantSpec, ...]
    created_by: int | None
    created_at: datetime
    stopped_at: datetime | None

    @property
    def control(self) -> VariantSpec:
        return self.variants[0]
