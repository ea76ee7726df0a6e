"""A rebuild writes the vocabulary once, after its last batch, with the same words, labels and frequencies as
indexing the products one at a time; refreshing stock flags writes only the documents whose flag changes."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.db import create_session_factory
from kernel.uow import unit_of_work
from subgraphs.search import repository, service
from tests.search.conftest import demo_snapshots

VOCABULARY = text("SELECT kind, word, label, frequency FROM search.vocabulary ORDER BY kind, word")


async def test_rebuild_vocabulary_spans_batches_and_matches_indexing_one_by_one(
        service_engine: AsyncEngine, monkeypatch) -> None:
    snapshots = demo_snapshots()
    sessions = create_session_factory(service_engine)
    async with unit_of_work(sessions) as session:
        for snapshot in snapshots:
            await service.index_product(session, snapshot)
    async with unit_of_work(sessions) as session:
        one_by_one = (await session.execute(VOCABULARY)).all()

    monkeypatch.setattr(service, "REBUILD_BATCH", 7)  # many batches sharing words
    async with unit_of_work(sessions) as session:
        await service.rebuild(session, snapshots)
    async with unit_of_work(sessions) as session:
        rebuilt = (await session.execute(VOCABULARY)).all()
    assert rebuilt == one_by_one  # frequencies counted across batches, the last label kept


async def test_refresh_in_stock_of_writes_only_documents_whose_flag_changes(service_engine: AsyncEngine) -> None:
    snapshots = demo_snapshots()[:5]
    sessions = create_session_factory(service_engine)
    async with unit_of_work(sessions) as session:
        await service.rebuild(session, snapshots)
    first = snapshots[0].product_id
    async with unit_of_work(sessions) as session:
        await session.execute(text("UPDATE search.variants SET in_stock = true WHERE product_id = :p"), {"p": first})
        before = dict((await session.execute(text("SELECT product_id, ctid::text FROM search.documents"))).all())
        await repository.refresh_in_stock_of(session, [s.product_id for s in snapshots])
        after = dict((await session.execute(text("SELECT product_id, ctid::text FROM search.documents"))).all())
        flags = dict((await session.execute(text("SELECT product_id, in_stock FROM search.documents"))).all())
    assert {p for p in after if after[p] != before[p]} == {first}
    assert flags == {s.product_id: s.product_id == first for s in snapshots}
