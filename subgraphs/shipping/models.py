"""Tables and records of the shipping domain (schema `shipping`; the DDL is migrations/*.sql)."""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CHAR, BigInteger, Boolean, Column, DateTime, Integer, MetaData, Numeric, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

SCHEMA = "shipping"
metadata = MetaData(schema=SCHEMA)

zones = Table(
    "zones", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("countries", ARRAY(Text), nullable=False),
    Column("regions", ARRAY(Text), nullable=False),
    Column("postal_prefixes", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

methods = Table(
    "methods", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("zone_id", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("carrier", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("price", Numeric(14, 2), nullable=False),
    Column("price_per_kg", Numeric(14, 2), nullable=False),
    Column("value_tiers", JSONB, nullable=False),
    Column("free_above", Numeric(14, 2)),
    Column("max_weight_grams", Integer),
    Column("min_days", Integer, nullable=False),
    Column("max_days", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

variants = Table(
    "variants", metadata,
    Column("variant_id", BigInteger, primary_key=True),
    Column("product_id", BigInteger, nullable=False),
    Column("weight_grams", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

products = Table(
    "products", metadata,
    Column("product_id", BigInteger, primary_key=True),
    Column("seller_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

orders = Table(
    "orders", metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("number", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

order_lines = Table(
    "order_lines", metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("item_id", BigInteger, primary_key=True),
    Column("variant_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("sku", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("shipped", Integer, nullable=False),
)

shipments = Table(
    "shipments", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, nullable=False),
    Column("carrier", Text, nullable=False),
    Column("tracking_number", Text, nullable=False),
    Column("tracking_url", Text),
    Column("status", Text, nullable=False),
    Column("created_by", BigInteger, nullable=False),
    Column("shipped_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
)

shipment_lines = Table(
    "shipment_lines", metadata,
    Column("shipment_id", BigInteger, primary_key=True),
    Column("item_id", BigInteger, primary_key=True),
    Column("quantity", Integer, nullable=False),
)


class RateKind(str, enum.Enum):
    FLAT = "FLAT"                # `price`
    WEIGHT = "WEIGHT"            # `price` + `price_per_kg` per started kilogram of the cart
    ORDER_VALUE = "ORDER_VALUE"  # the price of the highest value tier the order value reaches


class ShipmentStatus(str, enum.Enum):
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"


class OrderFactStatus(str, enum.Enum):
    PLACED = "PLACED"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


@dataclasses.dataclass(frozen=True, slots=True)
class ZoneRecord:
    id: int
    name: str
    countries: list[str]
    regions: list[str]
    postal_prefixes: list[str]
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ValueTier:
    min_order_value: Decimal
    price: Decimal


@dataclasses.dataclass(frozen=True, slots=True)
class MethodRecord:
    id: int
    zone_id: int
    name: str
    carrier: str
    kind: RateKind
    currency: str
    price: Decimal
    price_per_kg: Decimal
    value_tiers: list[ValueTier]
    free_above: Decimal | None
    max_weight_grams: int | None
    min_days: int
    max_days: int
    deleted: bool


@dataclasses.dataclass(frozen=True, slots=True)
class OrderFact:
    order_id: int
    user_id: int
    status: OrderFactStatus


@dataclasses.dataclass(frozen=True, slots=True)
class OrderLineRecord:
    order_id: int
    item_id: int
    variant_id: int
    product_id: int
    sku: str
    name: str
    quantity: int
    shipped: int


@dataclasses.dataclass(frozen=True, slots=True)
class ShipmentLineRecord:
    item_id: int
    quantity: int


@dataclasses.dataclass(frozen=True, slots=True)
class ShipmentRecord:
    id: int
    order_id: int
    carrier: str
    tracking_number: str
    tracking_url: str | None
    status: ShipmentStatus
    created_by: int
    shipped_at: datetime
    delivered_at: datetime | None
    lines: list[ShipmentLineRecord]


def tiers_from_json(raw: Any) -> list[ValueTier]:
    return [ValueTier(min_order_value=Decimal(str(t["min_order_value"])), price=Decimal(str(t["price"])))
            for t in raw or []]
