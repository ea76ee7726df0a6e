"""The search consumer keeps the index in step with catalog and inventory events (handlers called as the
worker's inbox transaction would call them)."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

from kernel.db import create_session_factory
from kernel.uow import unit_of_work
from subgraphs.catalog.events import ProductDeleted, ProductUpdated
from subgraphs.inventory.events import StockChanged
from subgraphs.search import consumers, service
from subgraphs.search.backends.postgres import PostgresSearch
from tests.search.conftest import demo_snapshots

ENGINE = PostgresSearch()


async def _hits(sessions, query: str, **filters) -> list[int]:
    async with unit_of_work(sessions) as session:
        filter_in = service.SearchFilterIn(**filters) if filters else None
        _, page = await service.search(session, ENGINE, query=query, first=50, after=None, filter_in=filter_in,
                                       sort="RELEVANCE", user_id=None)
    return [h.product_id for h in page.hits]


async def _handle(sessions, event) -> None:
    handlers = consumers.handlers(ENGINE)
    async with unit_of_work(sessions) as session:
        await handlers[type(event)](session, event)


async def test_products_and_stock_follow_their_events(service_engine) -> None:
    sessions = create_session_factory(service_engine)
    created = demo_snapshots()[4]
    variant = created.variants[0]
    # Stock may arrive before the product it belongs to.
    await _handle(sessions, StockChanged(variant_id=variant.variant_id, on_hand=3, reserved=0, available=3,
                                         in_stock=True))
    await _handle(sessions, created)
    assert await _hits(sessions, created.name) == [created.product_id]
    assert await _hits(sessions, created.name, in_stock=True) == [created.product_id]

    renamed = ProductUpdated(**{f.name: getattr(created, f.name) for f in dataclasses.fields(created)} | {
        "name": "Quillon Travel Kettle", "updated_at": created.updated_at + timedelta(seconds=1)})
    await _handle(sessions, renamed)
    assert await _hits(sessions, "quillon") == [created.product_id]

    # A snapshot older than the one applied (a late redelivery) changes nothing.
    await _handle(sessions, ProductUpdated(**{f.name: getattr(created, f.name) for f in dataclasses.fields(created)}))
    assert await _hits(sessions, "quillon") == [created.product_id]

    await _handle(sessions, StockChanged(variant_id=variant.variant_id, on_hand=3, reserved=3, available=0,
                                         in_stock=False))
    assert await _hits(sessions, "quillon", in_stock=True) == []

    await _handle(sessions, ProductDeleted(product_id=created.product_id, variant_ids=[variant.variant_id]))
    assert await _hits(sessions, "quillon") == []


async def test_a_rebuild_replaces_the_index_and_keeps_stock(service_engine, demo_index) -> None:
    sessions = create_session_factory(service_engine)
    keep = demo_index[1:11]
    async with unit_of_work(sessions) as session:
        assert await service.rebuild(session, keep) == 10
    assert set(await _hits(sessions, "", in_stock=True)) == {s.product_id for s in keep}
