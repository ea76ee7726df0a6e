"""The search subgraph's response cache: a repeated search is answered from Redis, yet no cached answer
outlives a change of the index (product events, stock, rebuild) or of the synonyms, and searchInsights still
counts every search, cache hits included."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from sqlalchemy import text

from kernel.consumer import WorkerResources
from kernel.db import create_session_factory
from kernel.uow import unit_of_work
from subgraphs.catalog.events import ProductUpdated
from subgraphs.inventory.events import StockChanged
from subgraphs.search import cache, consumers, service
from subgraphs.search.backends.postgres import PostgresSearch

SEARCH = """query($q: String!, $filter: SearchFilter) { search(query: $q, first: 50, filter: $filter) {
  totalCount edges { node { id } } facets { name values { value count } } } }"""
INSIGHTS = "{ searchInsights(days: 1) { topQueries { query count } zeroResultQueries { query count } searches } }"


async def _ids(search_api, query: str, **filters) -> list[int]:
    answer = (await search_api.ok(SEARCH, {"q": query, "filter": filters or None}))["search"]
    return [int(e["node"]["id"]) for e in answer["edges"]]


async def _cached_answers(redis) -> int:
    return len([key async for key in redis.scan_iter(match=f"{cache.GENERATION.response_prefix}*")])


async def _apply(service_engine, redis, event) -> None:
    """As the worker applies an event: the consumer's handler in one transaction, then its after-commit work."""
    async with unit_of_work(create_session_factory(service_engine)) as session:
        await consumers.handlers(PostgresSearch(), redis)[type(event)](session, event)


async def test_a_repeated_search_is_answered_from_the_cache(search_api, demo_index, redis, service_engine) -> None:
    first = await search_api.ok(SEARCH, {"q": "kettle"})
    assert await _cached_answers(redis) == 1
    # Proof the second answer is the cached one: the index changes behind the cache's back (no event, so no
    # bump), and the answer does not.
    async with service_engine.begin() as connection:
        await connection.execute(text("DELETE FROM search.documents WHERE name ILIKE '%kettle%'"))
    assert await search_api.ok(SEARCH, {"q": "kettle"}) == first
    assert first["search"]["totalCount"] > 0


async def test_a_bad_token_is_refused_even_when_the_answer_is_cached(search_api, demo_index, redis) -> None:
    await search_api.ok(SEARCH, {"q": "kettle"})
    assert await _cached_answers(redis) == 1
    assert await search_api.error_code(SEARCH, {"q": "kettle"}, token="not-a-token") == "UNAUTHENTICATED"


async def test_an_updated_product_is_found_by_its_new_name_right_after_its_event(
        search_api, demo_index, redis, service_engine) -> None:
    product = demo_index[4]
    old_word = product.name.split()[-1].lower()
    assert product.product_id in await _ids(search_api, old_word)
    assert await _ids(search_api, "quillon") == []
    assert await _cached_answers(redis) == 2

    renamed = ProductUpdated(**{f.name: getattr(product, f.name) for f in dataclasses.fields(product)} | {
        "name": "Quillon Travel Flask", "updated_at": product.updated_at + timedelta(seconds=1)})
    await _apply(service_engine, redis, renamed)

    assert await _ids(search_api, "quillon") == [product.product_id]
    assert product.product_id not in await _ids(search_api, old_word)


async def test_a_stock_change_reaches_cached_in_stock_searches(search_api, demo_index, redis, service_engine) -> None:
    product = demo_index[5]
    query = product.name
    assert product.product_id in await _ids(search_api, query, inStock=True)
    *others, last = product.variants
    for variant in others:
        await _apply(service_engine, redis, StockChanged(variant_id=variant.variant_id, on_hand=0, reserved=0,
                                                         available=0, in_stock=False))
    # A variant sold out while another is in stock leaves the product in stock: the cached answers stay.
    generation = await cache.GENERATION.current(redis)
    assert product.product_id in await _ids(search_api, query, inStock=True)
    await _apply(service_engine, redis, StockChanged(variant_id=last.variant_id, on_hand=0, reserved=0,
                                                     available=0, in_stock=False))
    assert await cache.GENERATION.current(redis) != generation
    assert product.product_id not in await _ids(search_api, query, inStock=True)


async def test_a_cached_answer_never_outlives_a_synonym_change(search_api, demo_index, token_for) -> None:
    mutation = "mutation($t: [String!]!) { setSearchSynonyms(terms: $t) }"
    admin = token_for("ADMIN")
    assert await _ids(search_api, "trainers") == await _ids(search_api, "trainers") == []
    await search_api.ok(mutation, {"t": ["trainers", "running shoe"]}, token=admin)
    # The same products: the order may differ, as the words as typed ("running shoe") count twice in relevance.
    shoes = sorted(await _ids(search_api, "running shoe"))
    assert shoes and sorted(await _ids(search_api, "trainers")) == shoes
    await search_api.ok(mutation, {"t": ["trainers"]}, token=admin)  # one term: its group is removed
    assert await _ids(search_api, "trainers") == []


async def test_a_rebuild_replaces_cached_answers(search_api, demo_index, redis, service_engine) -> None:
    everything = await _ids(search_api, "", inStock=True)
    keep = demo_index[1:11]
    async with unit_of_work(create_session_factory(service_engine)) as session:
        await service.rebuild(session, keep, redis)
    assert set(await _ids(search_api, "", inStock=True)) == {s.product_id for s in keep} != set(everything)


async def test_insights_count_every_search_cache_hits_included(search_api, demo_index, redis, settings,
                                                               service_engine, token_for) -> None:
    shopper = token_for("CUSTOMER", user_id=4242)
    for _ in range(3):
        await search_api.ok(SEARCH, {"q": "kettle"}, token=shopper)
    await search_api.ok(SEARCH, {"q": "submarine"})
    await search_api.ok(SEARCH, {"q": "submarine"})
    assert await _cached_answers(redis) == 2  # three of the five searches were cache hits

    # The worker's drain and an admin's insights may run at once: each search is counted once.
    sessions = create_session_factory(service_engine)
    [drain] = consumers.periodic_tasks(WorkerResources(settings=settings, session_factory=sessions, redis=redis))
    admin = token_for("ADMIN")
    _, found = await asyncio.gather(drain.run(), search_api.ok(INSIGHTS, token=admin))
    expected = {"topQueries": [{"query": "kettle", "count": 3}, {"query": "submarine", "count": 2}],
                "zeroResultQueries": [{"query": "submarine", "count": 2}], "searches": 5}
    assert found["searchInsights"] == expected
    await drain.run()
    assert (await search_api.ok(INSIGHTS, token=admin))["searchInsights"] == expected
    assert await redis.xlen(cache.QUERY_LOG_STREAM) == 0
    async with service_engine.connect() as connection:
        users = (await connection.execute(text("SELECT query, user_id FROM search.query_log"))).all()
    assert sorted(users, key=str) == sorted([("kettle", 4242)] * 3 + [("submarine", None)] * 2, key=str)


async def test_refused_searches_are_neither_cached_nor_logged(search_api, demo_index, redis) -> None:
    for _ in range(2):
        answer = await search_api.raw(SEARCH, {"q": "kettle", "filter": {"priceMin": "ten"}})
        assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await _cached_answers(redis) == 0
    assert await redis.xlen(cache.QUERY_LOG_STREAM) == 0


async def test_a_search_answer_is_never_shared_by_the_router(search_api, demo_index) -> None:
    # Every search served is logged for searchInsights, which only this subgraph's cache does on a hit: an answer
    # the router kept would go unlogged, so it is the caller's alone (Cache-Control: private) even when cached here.
    from kernel.graphql.context import CALLER_ONLY
    for _ in range(2):  # a miss, then a hit
        response = await search_api.http.post(search_api.url, json={"query": SEARCH, "variables": {"q": "kettle"}})
        assert response.status_code == 200 and not response.json().get("errors"), response.text
        assert response.headers["cache-control"] == CALLER_ONLY
