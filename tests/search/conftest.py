"""Search fixtures: the demo catalogue indexed straight through the search service (as the consumers would
from catalog's snapshots), and the in-process search subgraph."""
from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.db import create_session_factory
from kernel.settings import Settings
from kernel.uow import unit_of_work
from nexuscart.demo_data import CATEGORY_PLAN, demo_products
from subgraphs.catalog.events import ProductCreated, VariantSnapshot
from subgraphs.catalog.service import slugify
from subgraphs.search import repository, service
from tests.conftest import GraphQLClient, served_in_process

BASE_ID = 10**15


def _lineage(category: str) -> list[str]:
    parents = {name: parent for name, parent, *_ in CATEGORY_PLAN}
    chain = [category]
    while parents[chain[-1]]:
        chain.append(parents[chain[-1]])  # type: ignore[arg-type]  # the loop guard makes it a str
    return chain


def demo_snapshots() -> list[ProductCreated]:
    """The demo catalogue as catalog's product.created snapshots (ids: BASE_ID + position + 1)."""
    started = datetime(2026, 1, 1, tzinfo=UTC)
    snapshots = []
    for i, product in enumerate(demo_products()):
        product_id = BASE_ID + i + 1
        chain = _lineage(product.category)
        snapshots.append(ProductCreated(
            product_id=product_id, slug=slugify(product.name), name=product.name, brand=product.brand,
            description=product.description, tags=product.tags, category_id=1 + len(chain),
            seller_id=1, min_price=min(v.price for v in product.variants), currency="USD",
            created_at=started + timedelta(hours=i), updated_at=started + timedelta(hours=i),
            variants=[VariantSnapshot(variant_id=product_id * 10 + j, sku=v.sku, price=v.price, currency="USD",
                                      attributes=dict(v.attributes)) for j, v in enumerate(product.variants)],
            category_slugs=[slugify(c) for c in chain], category_names=chain))
    return snapshots


def product_id_of(name: str) -> int:
    for snapshot in demo_snapshots():
        if snapshot.name == name:
            return snapshot.product_id
    raise KeyError(name)


@pytest.fixture
async def demo_index(service_engine: AsyncEngine) -> list[ProductCreated]:
    """The demo catalogue indexed, every variant in stock except the first product's."""
    snapshots = demo_snapshots()
    async with unit_of_work(create_session_factory(service_engine)) as session:
        await service.rebuild(session, snapshots)
        # One statement instead of an inventory.stock_changed per variant (test_consumers covers those).
        await session.execute(text("UPDATE search.variants SET available = 10, in_stock = true "
                                   "WHERE product_id <> :first"), {"first": snapshots[0].product_id})
        await repository.refresh_in_stock_of(session, [s.product_id for s in snapshots])
    return snapshots


@pytest.fixture(scope="session")
async def search_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    from subgraphs.search.app import build_app
    async with served_in_process(build_app(settings)) as http:
        yield GraphQLClient(http, "/graphql")


def elasticsearch_configured() -> bool:
    return bool(os.environ.get("ELASTICSEARCH_URL"))


__all__ = ["demo_snapshots", "product_id_of"]
