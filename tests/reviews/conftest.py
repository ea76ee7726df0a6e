"""Reviews fixtures: the in-process reviews app (and variants of it with other settings), the reviews-projections
consumer driven through the kernel's IdempotentConsumer (inbox included), and builders of the catalog and orders
events the domain learns from."""
from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from kernel.consumer import WorkerResources
from kernel.db import create_session_factory
from kernel.settings import Settings
from tests.conftest import GraphQLClient, served_in_process
from tests.event_contracts import as_consumed
from tests.event_driver import EventDriver
from tests.orders.conftest import closed_port

REVIEW_FIELDS = ("id rating title body status verifiedPurchase helpfulCount author { id } product { id } "
                 "reply { body createdAt } createdAt updatedAt")
CREATE = f"mutation($input: CreateReviewInput!) {{ createReview(input: $input) {{ {REVIEW_FIELDS} }} }}"
UPDATE = (f"mutation($id: ID!, $input: UpdateReviewInput!) {{ updateReview(id: $id, input: $input) "
          f"{{ {REVIEW_FIELDS} }} }}")
DELETE = "mutation($id: ID!) { deleteReview(id: $id) }"
MODERATE = f"mutation($id: ID!, $d: ReviewDecision!) {{ moderateReview(id: $id, decision: $d) {{ {REVIEW_FIELDS} }} }}"
VOTE = f"mutation($id: ID!, $h: Boolean!) {{ voteReviewHelpful(id: $id, helpful: $h) {{ {REVIEW_FIELDS} }} }}"
REPLY = f"mutation($id: ID!, $body: String!) {{ replyToReview(id: $id, body: $body) {{ {REVIEW_FIELDS} }} }}"
REVIEW = f"query($id: ID!) {{ review(id: $id) {{ {REVIEW_FIELDS} }} }}"
PRODUCTS = """query($r: [_Any!]!, $first: Int, $after: String, $sort: ReviewSort, $rating: Int) {
  _entities(representations: $r) { ... on Product { id rating { average count histogram }
    reviews(first: $first, after: $after, sort: $sort, rating: $rating) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { id rating title status helpfulCount } } } } } }"""

_ids = itertools.count(7_000_000_000 + uuid.uuid4().int % 1_000_000_000)


def next_id() -> int:
    return next(_ids)


def product_event(product_id: int, seller_id: int, *, updated_at: datetime | None = None) -> dict[str, Any]:
    """catalog's product.created / product.updated snapshot, as catalog writes it."""
    stamp = (updated_at or datetime.now(UTC)).isoformat()
    variant_id = next_id()
    return as_consumed("product.created", {
        "product_id": str(product_id), "slug": f"p-{product_id}", "name": "Trail Shoe", "brand": None,
        "description": None, "tags": [], "category_id": "1", "seller_id": str(seller_id), "min_price": "19.99",
        "currency": "USD", "created_at": stamp, "updated_at": stamp,
        "variants": [{"variant_id": str(variant_id), "sku": f"SKU-{variant_id}", "price": "19.99", "currency": "USD",
                      "attributes": {}}],
        "category_slugs": [], "category_names": []})


def order_placed(order_id: int, user_id: int, product_ids: list[int]) -> dict[str, Any]:
    """order.placed as orders writes it: one line per product."""
    return as_consumed("order.placed", {
        "order_id": str(order_id), "user_id": str(user_id), "number": "NC-1", "cart_id": None,
        "items": [{"variant_id": str(next_id()), "product_id": str(p), "sku": f"SKU-{p}", "name": "Trail Shoe",
                   "quantity": 1, "unit_price": "19.99"} for p in product_ids],
        "subtotal": "19.99", "discount": "0.00", "total": "19.99", "currency": "USD",
        "placed_at": datetime.now(UTC).isoformat(), "coupon_code": None})


def order_paid(order_id: int, user_id: int) -> dict[str, Any]:
    return as_consumed("order.paid", {"order_id": str(order_id), "user_id": str(user_id),
                                      "items": [{"variant_id": str(next_id()), "quantity": 1}]})


def entities(*product_ids: int) -> list[dict[str, str]]:
    return [{"__typename": "Product", "id": str(p)} for p in product_ids]


@asynccontextmanager
async def reviews_client(settings: Settings, **overrides: Any) -> AsyncIterator[GraphQLClient]:
    """The reviews app in process, with `overrides` applied to its settings."""
    from subgraphs.reviews.app import build_app
    app = build_app(settings.model_copy(update=overrides))
    async with served_in_process(app, "http://reviews", timeout=30) as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    # No catalog behind it (its address refuses connections): a product is known only from the events delivered.
    with closed_port() as nowhere:
        async with reviews_client(settings, catalog_service_url=nowhere) as client:
            yield client


@pytest.fixture
def projections(settings, service_engine, redis) -> EventDriver:
    """The reviews-projections group, inbox included."""
    from subgraphs.reviews.consumers import consumer_specs
    return EventDriver.for_group(WorkerResources(settings=settings, redis=redis,
                                                 session_factory=create_session_factory(service_engine)),
                                 consumer_specs)


@pytest.fixture
def product(projections: EventDriver) -> Callable[..., Awaitable[int]]:
    """A product reviews has heard of (product.created delivered), sold by `seller_id`; returns its id."""
    async def make(seller_id: int | None = None) -> int:
        product_id = next_id()
        assert await projections.deliver("product.created",
                                         product_event(product_id, seller_id or next_id())) == "applied"
        return product_id

    return make


def review_input(product_id: int, **overrides: Any) -> dict[str, Any]:
    return {"productId": str(product_id), "rating": 4, "title": "Comfortable", "body": "Wore them for a week.",
            **overrides}
