"""Tables and records of the reviews domain (schema `reviews`; the DDL is migrations/*.sql)."""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, SmallInteger, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY

SCHEMA = "reviews"
metadata = MetaData(schema=SCHEMA)

reviews = Table(
    "reviews", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("product_id", BigInteger, nullable=False),
    Column("author_id", BigInteger, nullable=False),
    Column("rating", SmallInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("verified_purchase", Boolean, nullable=False),
    Column("helpful_count", Integer, nullable=False),
    Column("reply_body", Text),
    Column("reply_author_id", BigInteger),
    Column("replied_at", DateTime(timezone=True)),
    Column("moderated_by", BigInteger),
    Column("moderated_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

review_votes = Table(
    "review_votes", metadata,
    Column("review_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

product_ratings = Table(
    "product_ratings", metadata,
    Column("product_id", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("rating_sum", Integer, nullable=False),
    Column("stars_1", Integer, nullable=False),
    Column("stars_2", Integer, nullable=False),
    Column("stars_3", Integer, nullable=False),
    Column("stars_4", Integer, nullable=False),
    Column("stars_5", Integer, nullable=False),
)

products = Table(
    "products", metadata,
    Column("product_id", BigInteger, primary_key=True),
    Column("seller_id", BigInteger),
    Column("deleted", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)

order_facts = Table(
    "order_facts", metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("product_ids", ARRAY(BigInteger)),
    Column("paid_at", DateTime(timezone=True)),
)

purchases = Table(
    "purchases", metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("product_id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, nullable=False),
    Column("purchased_at", DateTime(timezone=True), nullable=False),
)


class ReviewStatus(str, enum.Enum):
    PENDING = "PENDING"     # written or edited, waiting for an ADMIN (unless REVIEWS_AUTO_APPROVE)
    APPROVED = "APPROVED"   # public: in Product.reviews and counted in Product.rating
    REJECTED = "REJECTED"   # seen by its author only


@dataclasses.dataclass(frozen=True, slots=True)
class ReviewRecord:
    id: int
    product_id: int
    author_id: int
    rating: int
    title: str
    body: str
    status: str
    verified_purchase: bool
    helpful_count: int
    reply_body: str | None
    reply_author_id: int | None
    replied_at: datetime | None
    moderated_by: int | None
    moderated_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def approved(self) -> bool:
        return self.status == ReviewStatus.APPROVED.value


@dataclasses.dataclass(frozen=True, slots=True)
class RatingRecord:
    """A product's APPROVED reviews, counted per star (stars[0] is 1 star)."""
    product_id: int
    count: int
    rating_sum: int
    stars: tuple[int, int, int, int, int]

    @property
    def average(self) -> float | None:
        return round(self.rating_sum / self.count, 2) if self.count else None

    @classmethod
    def empty(cls, product_id: int) -> RatingRecord:
        return cls(product_id=product_id, count=0, rating_sum=0, stars=(0, 0, 0, 0, 0))


@dataclasses.dataclass(frozen=True, slots=True)
class ProductRecord:
    """This domain's copy of a catalog product."""
    product_id: int
    seller_id: int | None
    deleted: bool
