"""Recommendations fixtures: the in-process subgraph with a Recommender the test holds (so it can refresh the
catalogue when it wants the projection's latest), the recommendations-projections consumer driven through the
kernel's IdempotentConsumer (inbox included), and builders of the catalog, inventory and orders events it learns
from."""
from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from kernel.consumer import WorkerResources
from kernel.db import create_session_factory
from kernel.graphql import ServiceResources
from kernel.settings import Settings
from subgraphs.recommendations.serving import Recommender
from tests.conftest import GraphQLClient, served_in_process
from tests.event_contracts import as_consumed
from tests.event_driver import EventDriver

TRACK = "mutation($input: TrackInteractionInput!) { trackInteraction(input: $input) }"
FOR_YOU = "query($first: Int, $s: String) { recommendedForYou(first: $first, sessionId: $s) { id } }"
PRODUCT_LISTS = """query($r: [_Any!]!, $first: Int) { _entities(representations: $r) { ... on Product {
  id similarProducts(first: $first) { id } frequentlyBoughtTogether(first: $first) { id } } } }"""

_ids = itertools.count(8_000_000_000 + uuid.uuid4().int % 1_000_000_000)


def next_id() -> int:
    return next(_ids)


def product_created(product_id: int, category_id: int, variant_id: int, *,
                    updated_at: datetime | None = None) -> dict[str, Any]:
    stamp = (updated_at or datetime.now(UTC)).isoformat()
    return as_consumed("product.created", {
        "product_id": str(product_id), "slug": f"p-{product_id}", "name": "Trail Shoe", "brand": "acme",
        "description": None, "tags": ["outdoor"], "category_id": str(category_id), "seller_id": "1",
        "min_price": "19.99", "currency": "USD", "created_at": stamp, "updated_at": stamp,
        "variants": [{"variant_id": str(variant_id), "sku": f"SKU-{variant_id}", "price": "19.99", "currency": "USD",
                      "attributes": {}}],
        "category_slugs": [], "category_names": []})


def stock_changed(variant_id: int, available: int) -> dict[str, Any]:
    return as_consumed("inventory.stock_changed", {"variant_id": str(variant_id), "on_hand": available,
                                                   "reserved": 0, "available": available,
                                                   "in_stock": available > 0})


def order_paid(order_id: int, user_id: int, variant_ids: list[int]) -> dict[str, Any]:
    return as_consumed("order.paid", {"order_id": str(order_id), "user_id": str(user_id),
                                      "items": [{"variant_id": str(v), "quantity": 1} for v in variant_ids]})


def ids(body: dict[str, Any]) -> list[int]:
    return [int(p["id"]) for p in body["recommendedForYou"]]


@dataclass
class Subgraph:
    client: GraphQLClient
    recommender: Recommender
    resources: ServiceResources

    async def refresh(self) -> None:
        """What the subgraph does by itself every RECOMMENDATIONS_REFRESH_SECONDS, now."""
        await self.recommender.refresh(self.resources.session_factory)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Subgraph]:
    """The subgraph in process, without a model (popularity from the projection answers)."""
    from subgraphs.recommendations.app import build_app
    recommender = Recommender(None, refresh_seconds=3600)
    app = build_app(settings.model_copy(update={"recommendations_interactions_per_minute": 30}),
                    recommender=recommender)
    async with served_in_process(app, "http://recommendations", timeout=30) as http:
        yield Subgraph(GraphQLClient(http, "/graphql"), recommender, app.app.state.resources)


@pytest.fixture
def projections(settings, service_engine, redis) -> EventDriver:
    """The recommendations-projections group, inbox included."""
    from subgraphs.recommendations.consumers import consumer_specs
    return EventDriver.for_group(WorkerResources(settings=settings, redis=redis,
                                                 session_factory=create_session_factory(service_engine)),
                                 consumer_specs)


@dataclass(frozen=True)
class Listed:
    product_id: int
    variant_id: int
    category_id: int


@pytest.fixture
def listed(projections: EventDriver) -> Callable[..., Awaitable[Listed]]:
    """A product recommendations has heard of (product.created), in stock unless `in_stock=False`."""
    async def make(category_id: int, *, in_stock: bool = True) -> Listed:
        product = Listed(next_id(), next_id(), category_id)
        assert await projections.deliver("product.created", product_created(
            product.product_id, category_id, product.variant_id)) == "applied"
        if in_stock:
            assert await projections.deliver("inventory.stock_changed", stock_changed(product.variant_id, 5)) == \
                "applied"
        return product

    return make
