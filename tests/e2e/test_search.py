"""Search end to end: catalog writes reach the search index through the outbox, Kafka and the search
consumer, and the router answers `search` with the product card from the index and any other field from catalog."""
from __future__ import annotations

import time

from kernel.ids import next_id

SEARCH = """query($q: String!) { search(query: $q, first: 5) { totalCount didYouMean
  edges { node { id name brand } highlights { field snippet } } facets { name values { value count } } } }"""


async def _poll(router, query: str, variables: dict, done) -> dict:
    deadline = time.monotonic() + 20
    while True:
        answer = await router.ok(query, variables)
        if done(answer) or time.monotonic() > deadline:
            return answer
        await _pause()


async def _pause() -> None:
    import asyncio
    await asyncio.sleep(0.1)


async def test_created_and_updated_products_become_searchable(router, token_for) -> None:
    admin = token_for("ADMIN", user_id=next_id())
    category = (await router.ok('mutation { createCategory(input: {name: "Searchable Goods"}) { id } }',
                                token=admin))["createCategory"]["id"]
    created = (await router.ok(
        """mutation($c: ID!) { createProduct(input: {name: "Zephyrine Espresso Grinder", categoryId: $c,
           brand: "Brewlab", description: "Burr grinder for espresso",
           variants: [{sku: "BRW-GR-1", price: "149.00", currency: "USD", attributes: {color: "Black"}}]}) { id } }""",
        {"c": category}, token=admin))["createProduct"]["id"]

    found = await _poll(router, SEARCH, {"q": "zephyrine"}, lambda a: a["search"]["totalCount"] == 1)
    hit = found["search"]["edges"][0]
    assert hit["node"] == {"id": created, "name": "Zephyrine Espresso Grinder", "brand": "Brewlab"}
    assert hit["highlights"][0]["snippet"] == "<em>Zephyrine</em> Espresso Grinder"
    typo = (await router.ok(SEARCH, {"q": "zephyrene grinder"}))["search"]
    assert typo["totalCount"] == 1 and typo["didYouMean"] == "zephyrine grinder"
    facets = {f["name"]: f["values"] for f in found["search"]["facets"]}
    assert facets["brand"] == [{"value": "Brewlab", "count": 1}]
    assert facets["category"] == [{"value": "searchable-goods", "count": 1}]

    await router.ok('mutation($id: ID!) { updateProduct(id: $id, input: {name: "Zephyrine Coffee Mill"}) { id } }',
                    {"id": created}, token=admin)
    renamed = await _poll(router, SEARCH, {"q": "coffee mill"}, lambda a: a["search"]["totalCount"] == 1)
    assert renamed["search"]["edges"][0]["node"]["name"] == "Zephyrine Coffee Mill"

    await router.ok('mutation($id: ID!) { deleteProduct(id: $id) }', {"id": created}, token=admin)
    # Until the index hears of the deletion, catalog no longer resolves the product: a `node` asked for catalog's
    # fields is null (with an error) while the rest of the answer stands. Ids only, so no such error.
    gone = await _poll(router, "query($q: String!) { search(query: $q) { totalCount edges { node { id } } } }",
                       {"q": "zephyrine"}, lambda a: a["search"]["totalCount"] == 0)
    assert gone["search"] == {"totalCount": 0, "edges": []}


CARD_AND_MORE = """query($q: String!) {
  search(query: $q, first: 3) { edges { node { id slug name brand minPrice { amount currency }
                                               variants { sku } category { name } } } }
  searchSuggestions(prefix: $q, first: 8) { kind product { id slug name minPrice { amount } } } }"""
PRODUCT = """query($id: ID!) { product(id: $id) { id slug name brand minPrice { amount currency }
  variants { sku } category { name } } }"""


async def test_a_results_card_agrees_with_catalog_and_other_fields_still_come_from_catalog(router, token_for) -> None:
    # Search answers id, slug, name, brand and minPrice from its index; variants and category come from catalog
    # in the same answer. Both must read as one product.
    admin = token_for("ADMIN", user_id=next_id())
    category = (await router.ok('mutation { createCategory(input: {name: "Card Goods"}) { id } }',
                                token=admin))["createCategory"]["id"]
    created = (await router.ok(
        """mutation($c: ID!) { createProduct(input: {name: "Quillhaven Desk Lamp", categoryId: $c, brand: "Lumo",
           variants: [{sku: "LMO-QL-1", price: "149.00", currency: "USD"},
                      {sku: "LMO-QL-2", price: "99.50", currency: "USD"}]}) { id } }""",
        {"c": category}, token=admin))["createProduct"]["id"]

    found = await _poll(router, CARD_AND_MORE, {"q": "quillhaven"}, lambda a: len(a["search"]["edges"]) == 1)
    node = found["search"]["edges"][0]["node"]
    assert node == (await router.ok(PRODUCT, {"id": created}))["product"]
    assert node["minPrice"] == {"amount": "99.50", "currency": "USD"}
    assert sorted(v["sku"] for v in node["variants"]) == ["LMO-QL-1", "LMO-QL-2"]
    suggested = [s["product"] for s in found["searchSuggestions"] if s["kind"] == "PRODUCT"]
    assert suggested == [{"id": created, "slug": node["slug"], "name": "Quillhaven Desk Lamp",
                          "minPrice": {"amount": "99.50"}}]


async def test_bad_search_input_is_a_client_error_through_the_router(router) -> None:
    assert await router.error_code(SEARCH, {"q": " "}) == "BAD_USER_INPUT"
    assert await router.error_code(SEARCH, {"q": "x" * 10_000}) == "BAD_USER_INPUT"
