"""The search consumer keeps the index in step with catalog and inventory events (handlers called as the
worker's inbox transaction would call them)."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

from sqlalchemy import text

from kernel.consumer import WorkerResources
from kernel.db import create_session_factory
from kernel.events import EventEnvelope
from kernel.ids import next_id
from kernel.uow import unit_of_work
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductUpdated
from subgraphs.inventory.events import StockChanged
from subgraphs.search import consumers, service
from subgraphs.search.backends.postgres import PostgresSearch
from tests.event_driver import apply_interleaved
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


async def test_two_workers_batches_sharing_words_queue_instead_of_deadlocking(service_engine) -> None:
    """Worker A's batch indexes a product named with word 1, then one with word 2; worker B's the other way
    round. Were each product to lock its vocabulary rows only when indexed, A would hold word 1 and wait for word
    2 while B holds word 2 and waits for word 1: Postgres would roll one batch back after its deadlock timeout.
    The group locks the batch's vocabulary rows up front, in order, instead."""
    sessions = create_session_factory(service_engine)
    base = demo_snapshots()[0]
    tag = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:6])  # letters: words with digits are not kept
    words = {"one": f"zephyr{tag}", "two": f"quartz{tag}"}

    def product(word: str) -> ProductCreated:
        # nothing but the one word: no description, brand, category, tags or attributes shared between them
        return ProductCreated(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)} | {
            "product_id": next_id(), "slug": f"{word}-{next_id()}", "name": word.capitalize(), "brand": None,
            "description": None, "tags": [], "category_names": [], "category_slugs": [],
            "variants": [dataclasses.replace(v, variant_id=next_id(), attributes={}) for v in base.variants[:1]]})

    [spec] = consumers.consumer_specs(WorkerResources(settings=None, session_factory=sessions, redis=None,
                                                      extras={"search_engine": ENGINE}))
    def created(word: str) -> EventEnvelope:
        snapshot = product(word)
        return EventEnvelope.new(snapshot.topic, snapshot.to_payload())

    batches = {"A": [created(words["one"]), created(words["two"])], "B": [created(words["two"]), created(words["one"])]}
    applied_together = await asyncio.wait_for(apply_interleaved(spec, sessions, batches), 30)

    # each batch committed as one transaction, and each word counts its two products
    assert applied_together == [True, True]
    async with sessions() as session:
        counted = dict((await session.execute(text(
            "SELECT word, frequency FROM search.vocabulary WHERE kind = 'WORD' AND word = ANY(:w)"),
            {"w": list(words.values())})).all())
    assert counted == {words["one"]: 2, words["two"]: 2}
