"""`nexuscart reindex`: rebuild the search index from the catalog, without downtime, and refresh the
recommendations' copy of the products.

The platform composes the domains here, as the seed does: catalog reads its own products (the same snapshots its
events carry), search replaces its index with them in one transaction (searches read the old index until it
commits) and, with Elasticsearch, loads a new index and swaps the alias. Recommendations applies each snapshot as
its consumer would (an older one than it has changes nothing), which gives the rows from before its product
cards were kept their card.
"""
from __future__ import annotations

import time

from kernel.db import create_engine, create_session_factory
from kernel.redis import create_redis
from kernel.settings import Settings
from kernel.uow import unit_of_work
from subgraphs.catalog import repository as catalog_repository
from subgraphs.catalog import service as catalog
from subgraphs.catalog.events import ProductSnapshot, ProductUpdated
from subgraphs.recommendations import service as recommendations
from subgraphs.search import repository as search_repository
from subgraphs.search import service as search
from subgraphs.search.backends import search_engine

PAGE = 500


async def reindex(settings: Settings) -> str:
    settings.require_peers("database_url")
    engine = create_engine(settings)
    index = search_engine(settings)
    # Search caches whole answers in Redis under a generation the rebuild bumps once it commits.
    redis = create_redis(settings) if settings.redis_url else None
    started = time.perf_counter()
    try:
        sessions = create_session_factory(engine)
        snapshots: list[ProductSnapshot] = []
        lineages: dict[int, list[tuple[str, str]]] = {}
        async with sessions() as session:
            after = 0
            while ids := await catalog_repository.live_product_ids_after(session, after, PAGE):
                documents = await catalog_repository.product_documents(session, ids)
                for product_id in ids:
                    doc = documents[product_id]
                    category_id = doc["category_id"]
                    if category_id not in lineages:
                        lineages[category_id] = await catalog_repository.category_lineage(session, category_id)
                    snapshots.append(catalog.snapshot(doc, ProductUpdated, lineages[category_id]))
                after = ids[-1]
        async with unit_of_work(sessions) as session:
            count = await search.rebuild(session, snapshots, redis)
        target = "postgres"
        if index.name != "postgres":
            async with sessions() as session:
                documents_out = await search.index_documents(session, [s.product_id for s in snapshots])
                groups = await search_repository.synonym_groups(session)
            target = await index.rebuild(documents_out, groups)
        # Recommendations publishes what may be shown to Redis: without it there is nothing to refresh.
        for page_start in range(0, len(snapshots) if redis is not None else 0, PAGE):
            async with unit_of_work(sessions) as session:
                for snapshot in snapshots[page_start:page_start + PAGE]:
                    await recommendations.apply_product_snapshot(session, redis, snapshot)  # type: ignore[arg-type]
        return (f"reindexed {count} products into {target} and refreshed them in recommendations in "
                f"{time.perf_counter() - started:.1f} s")
    finally:
        if hasattr(index, "aclose"):
            await index.aclose()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
