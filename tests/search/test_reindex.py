"""`nexuscart reindex` rebuilds the search index from what the catalog holds, and gives recommendations' copy of
the products their cards."""
from __future__ import annotations

from sqlalchemy import text

from kernel.auth import Principal
from kernel.db import create_session_factory
from kernel.uow import unit_of_work
from nexuscart.reindex import reindex
from subgraphs.catalog import service as catalog
from subgraphs.recommendations import repository as recommendations
from subgraphs.search import service
from subgraphs.search.backends.postgres import PostgresSearch


async def test_reindex_indexes_every_live_catalog_product_with_its_category_lineage(
        settings, service_engine, redis) -> None:
    sessions = create_session_factory(service_engine)
    admin = Principal(1, frozenset({"ADMIN"}))
    async with unit_of_work(sessions) as session:
        parent = await catalog.create_category(session, redis, caller=admin,
                                               category_in=catalog.CategoryIn(name="Outdoor Gear"))
        child = await catalog.create_category(session, redis, caller=admin,
                                              category_in=catalog.CategoryIn(name="Tents", parent_id=parent.id))
        kept = await catalog.create_product(session, redis, caller=admin, product_in=catalog.ProductIn(
            name="Alpenglow Dome Tent", category_id=child.id, brand="Alpenglow",
            variants=[catalog.VariantIn(sku="ALP-T-1", price="199.00", currency="USD", attributes={"size": "2p"})]))
        dropped = await catalog.create_product(session, redis, caller=admin, product_in=catalog.ProductIn(
            name="Alpenglow Tarp", category_id=child.id,
            variants=[catalog.VariantIn(sku="ALP-T-2", price="49.00", currency="USD")]))
        await catalog.delete_product(session, redis, caller=admin, product_id=dropped["id"])

    async with unit_of_work(sessions) as session:  # as if recorded before recommendations kept cards
        await session.execute(text("INSERT INTO recommendations.products (product_id, category_id, tags, deleted, "
                                   "in_stock) VALUES (:id, :category, '{}', false, true)"),
                              {"id": kept["id"], "category": child.id})

    assert (await reindex(settings)).startswith("reindexed 1 products into postgres")

    async with unit_of_work(sessions) as session:
        _, page = await service.search(session, PostgresSearch(), query="outdoor tent", first=10, after=None,
                                       filter_in=None, sort="RELEVANCE", user_id=None)
    assert [h.product_id for h in page.hits] == [kept["id"]]
    assert {f.name: [v.value for v in f.values] for f in page.facets}["category"] == ["outdoor-gear", "tents"]

    async with sessions() as session:
        card = (await recommendations.get_product(session, kept["id"])).card
    assert card is not None and (card.name, card.brand, str(card.min_price)) == ("Alpenglow Dome Tent", "Alpenglow",
                                                                                "199.00")
