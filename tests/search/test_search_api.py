"""The search subgraph's behaviour, through its GraphQL API in process: relevance basics, typos, facets with
post_filter semantics, sorts, highlights, pages, suggestions, synonyms, insights and bad input.

The relevance, typo, facet, sort and paging tests run on each backend: Postgres always, Elasticsearch only
when ELASTICSEARCH_URL points at a server (none can be installed on the development machines; its request
bodies are checked in test_elasticsearch_bodies.py)."""
from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from kernel.db import create_session_factory
from subgraphs.search import service
from tests.conftest import GraphQLClient
from tests.search.conftest import elasticsearch_configured

SEARCH = """query($q: String!, $first: Int, $after: String, $filter: SearchFilter, $sort: SearchSort) {
  search(query: $q, first: $first, after: $after, filter: $filter, sort: $sort) {
    totalCount didYouMean pageInfo { hasNextPage endCursor }
    edges { cursor node { id } highlights { field snippet } }
    facets { name values { value label count selected } } } }"""


def facet(result: dict, name: str) -> dict[str, tuple[int, bool]]:
    values = next(f["values"] for f in result["facets"] if f["name"] == name)
    return {v["value"]: (v["count"], v["selected"]) for v in values}


@pytest.fixture(params=["postgres", "elasticsearch"])
async def backend_api(request: pytest.FixtureRequest, search_api, settings, service_engine,
                      demo_index) -> AsyncIterator[GraphQLClient]:
    """The same behaviour, on each backend: Postgres always; Elasticsearch when ELASTICSEARCH_URL is set (the
    demo index is then rebuilt into a test alias there)."""
    if request.param == "postgres":
        yield search_api
        return
    if not elasticsearch_configured():
        pytest.skip("ELASTICSEARCH_URL is not set: no Elasticsearch server can run on this machine")
    from subgraphs.search.app import build_app
    from subgraphs.search.backends.elasticsearch import ElasticsearchSearch
    es_settings = settings.model_copy(update={"elasticsearch_url": os.environ["ELASTICSEARCH_URL"],
                                              "elasticsearch_index": "nexuscart-test-products"})
    engine = ElasticsearchSearch(es_settings.elasticsearch_url, es_settings.elasticsearch_index)
    async with create_session_factory(service_engine)() as session:
        documents = await service.index_documents(session, [s.product_id for s in demo_index])
    await engine.rebuild(documents, [])
    await engine.aclose()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(es_settings)),
                                 base_url="http://subgraph") as http:
        yield GraphQLClient(http, "/graphql")


async def test_prefix_plural_and_sku_find_the_right_products(backend_api, demo_index) -> None:
    search_api = backend_api
    names = {str(s.product_id): s.name for s in demo_index}
    head = (await search_api.ok(SEARCH, {"q": "head"}))["search"]
    assert head["totalCount"] > 0 and all("Headphones" in names[e["node"]["id"]] for e in head["edges"])
    assert head["edges"][0]["highlights"][0]["field"] == "name"
    assert "<em>Headphones</em>" in head["edges"][0]["highlights"][0]["snippet"]
    plural = (await search_api.ok(SEARCH, {"q": "kettles"}))["search"]
    singular = (await search_api.ok(SEARCH, {"q": "kettle"}))["search"]
    assert plural["totalCount"] == singular["totalCount"] > 0
    sku = demo_index[41].variants[0].sku
    by_sku = (await search_api.ok(SEARCH, {"q": sku.lower()}))["search"]
    assert names[by_sku["edges"][0]["node"]["id"]] == demo_index[41].name


async def test_typos_are_forgiven_and_did_you_mean_names_the_spelling(backend_api, demo_index) -> None:
    search_api = backend_api
    typo = (await search_api.ok(SEARCH, {"q": "ketle"}))["search"]
    right = (await search_api.ok(SEARCH, {"q": "kettle"}))["search"]
    assert typo["totalCount"] == right["totalCount"] > 0
    assert typo["didYouMean"] == "kettle" and right["didYouMean"] is None
    two = (await search_api.ok(SEARCH, {"q": "smarphnoe"}))["search"]  # 9 letters: two typos allowed
    assert two["totalCount"] > 0
    short = (await search_api.ok(SEARCH, {"q": "mot"}))["search"]  # 3 letters: no typo allowed ("mat")
    assert short["totalCount"] == 0


async def test_facets_keep_the_other_values_of_the_chosen_facet(backend_api, demo_index) -> None:
    search_api = backend_api
    everything = (await search_api.ok(SEARCH, {"q": "headphones"}))["search"]
    brands = facet(everything, "brand")
    assert len(brands) >= 2
    chosen = min(brands, key=lambda b: brands[b][0])
    narrowed = (await search_api.ok(SEARCH, {"q": "headphones", "filter": {"brands": [chosen]}}))["search"]
    assert narrowed["totalCount"] == brands[chosen][0]
    # post_filter: the brand facet still lists every brand with its unfiltered count, the choice marked.
    assert {b: c for b, (c, _) in facet(narrowed, "brand").items()} == {b: c for b, (c, _) in brands.items()}
    assert facet(narrowed, "brand")[chosen][1] is True
    # ...while the other facets count only the chosen brand's products.
    colors_after = sum(c for c, _ in facet(narrowed, "color").values())
    assert colors_after < sum(c for c, _ in facet(everything, "color").values())
    colors = facet(everything, "color")
    color = next(iter(colors))
    by_color = (await search_api.ok(SEARCH, {"q": "headphones", "filter": {
        "attributes": [{"name": "color", "values": [color]}]}}))["search"]
    assert by_color["totalCount"] == colors[color][0]
    in_stock = (await search_api.ok(SEARCH, {"q": "power bank", "filter": {"inStock": True}}))["search"]
    assert str(demo_index[0].product_id) not in {e["node"]["id"] for e in in_stock["edges"]}
    assert facet(in_stock, "inStock")["false"][0] == 1


async def test_browse_sorts_and_pages(backend_api, demo_index) -> None:
    search_api = backend_api
    prices = {str(s.product_id): s.min_price for s in demo_index}
    audio = {"categorySlugs": ["audio"]}
    asc = (await search_api.ok(SEARCH, {"q": "", "filter": audio, "sort": "PRICE_ASC", "first": 100}))["search"]
    ordered = [prices[e["node"]["id"]] for e in asc["edges"]]
    assert ordered == sorted(ordered) and len(ordered) == asc["totalCount"] == 15
    electronics = (await search_api.ok(SEARCH, {"q": "", "filter": {"categorySlugs": ["electronics"]}}))["search"]
    assert electronics["totalCount"] == 60  # a category includes its subcategories
    seen: list[str] = []
    after = None
    while True:
        page = (await search_api.ok(SEARCH, {"q": "", "filter": audio, "sort": "PRICE_DESC", "first": 4,
                                             "after": after}))["search"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 15
    assert [prices[i] for i in seen] == sorted((prices[i] for i in seen), reverse=True)


@pytest.mark.parametrize(("variables", "field"), [
    ({"q": "   "}, "query"),
    ({"q": "x" * 10_000}, "query"),
    ({"q": "&|!:*()\"\\"}, "query"),
    ({"q": "kettle", "first": 0}, "first"),
    ({"q": "kettle", "first": 101}, "first"),
    ({"q": "kettle", "after": "not-a-cursor"}, "after"),
    ({"q": "kettle", "filter": {"attributes": [{"name": "flavour", "values": ["x"]}]}}, "filter.attributes"),
    ({"q": "kettle", "filter": {"priceMin": "ten"}}, "filter.priceMin"),
])
async def test_bad_input_is_refused_with_a_code(search_api, demo_index, variables, field) -> None:
    answer = await search_api.raw(SEARCH, variables)
    assert answer["data"] is None
    assert answer["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}


@pytest.mark.parametrize(("query", "same_as"), [
    ("kettle' OR 1=1 --", "kettle or 1 1"), ("kettle & !toaster", "kettle toaster"), ("name:kettle*", "name kettle"),
    ("(kettle) | \"x\"", "kettle x"), ("kettle\\", "kettle"),
    ("{\"query_string\": {\"query\": \"*\"}}", "query string query")])
async def test_operators_and_injection_are_plain_text(search_api, demo_index, query, same_as) -> None:
    answer = (await search_api.ok(SEARCH, {"q": query}))["search"]
    assert answer == (await search_api.ok(SEARCH, {"q": same_as}))["search"]
    assert answer["totalCount"] < len(demo_index)


async def test_suggestions_complete_brands_categories_and_products(search_api, demo_index) -> None:
    query = "query($p: String!) { searchSuggestions(prefix: $p, first: 6) { text kind product { id } } }"
    found = (await search_api.ok(query, {"p": "cook"}))["searchSuggestions"]
    assert {"text": "Cookware", "kind": "CATEGORY", "product": None} in found
    typo = (await search_api.ok(query, {"p": "copperlef"}))["searchSuggestions"]
    assert typo[0] == {"text": "Copperleaf", "kind": "BRAND", "product": None}
    assert any(s["kind"] == "PRODUCT" and s["text"].startswith("Copperleaf") for s in typo)


async def test_synonyms_apply_at_once_and_need_admin(search_api, demo_index, token_for) -> None:
    mutation = "mutation($t: [String!]!) { setSearchSynonyms(terms: $t) }"
    before = (await search_api.ok(SEARCH, {"q": "trainers"}))["search"]["totalCount"]
    assert before == 0
    assert await search_api.error_code(mutation, {"t": ["trainers", "running shoe"]},
                                       token=token_for("CUSTOMER")) == "FORBIDDEN"
    admin = token_for("ADMIN")
    assert (await search_api.ok(mutation, {"t": ["Trainers", "running shoe"]}, token=admin)) == {
        "setSearchSynonyms": ["trainers", "running shoe"]}
    after = (await search_api.ok(SEARCH, {"q": "trainers"}))["search"]
    shoes = (await search_api.ok(SEARCH, {"q": "running shoe"}))["search"]
    assert after["totalCount"] == shoes["totalCount"] > 0
    assert (await search_api.ok("{ searchSynonyms }", token=admin))["searchSynonyms"] == [["trainers", "running shoe"]]


async def test_insights_count_queries_zero_results_and_clicks(search_api, demo_index, token_for) -> None:
    await search_api.ok(SEARCH, {"q": "kettle"})
    await search_api.ok(SEARCH, {"q": "kettle"})
    await search_api.ok(SEARCH, {"q": "submarine"})
    clicked = str(demo_index[4].product_id)
    await search_api.ok("mutation($p: ID!) { trackSearchClick(query: \"kettle\", productId: $p, position: 1) }",
                        {"p": clicked})
    insights = "{ searchInsights(days: 7) { topQueries { query count } zeroResultQueries { query count } " \
               "searches clickThroughRate } }"
    assert await search_api.error_code(insights, token=token_for("CUSTOMER")) == "FORBIDDEN"
    found = (await search_api.ok(insights, token=token_for("ADMIN")))["searchInsights"]
    assert found["topQueries"][0] == {"query": "kettle", "count": 2}
    assert found["zeroResultQueries"] == [{"query": "submarine", "count": 1}]
    assert found["searches"] == 3 and found["clickThroughRate"] == pytest.approx(1 / 3, abs=1e-3)
