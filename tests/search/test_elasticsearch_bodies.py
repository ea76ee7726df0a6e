"""The Elasticsearch adapter's mappings and request bodies, and its reindex sequence against a recording
client. No Elasticsearch server can run on the development machines: these check what the adapter sends,
not what a server answers (the behavioural suite runs against a server only when ELASTICSEARCH_URL is set)."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from elastic_transport import JsonSerializer, SerializerCollection

from subgraphs.search.backends import elasticsearch as es
from subgraphs.search.backends.base import IndexDocument, ProductCard, SearchFilters, SearchRequest
from subgraphs.search.service import clauses_with_synonyms, parse_request

DOC = IndexDocument(
    product_id=42, slug="sonora-aero-headphones", name="Sonora Aero Headphones", brand="Sonora",
    description="Closed-back headphones", tags=("audio",), category_id=7, category_slugs=("audio", "electronics"),
    category_names=("Audio", "Electronics"), skus=("nc-0042-1",), attributes={"color": ["Black", "White"]},
    min_price=Decimal("129.00"), currency="USD", in_stock=True, popularity=3,
    created_at=datetime(2026, 1, 1, tzinfo=UTC), updated_at=datetime(2026, 1, 2, tzinfo=UTC))


def request_for(query: str, filters: SearchFilters | None = None, sort: Any = "RELEVANCE",
                groups: list[list[str]] | None = None) -> SearchRequest:
    return parse_request(query, first=20, after=None, filters=filters or SearchFilters(), sort=sort,
                         synonym_groups=groups or [])


def test_mapping_folds_accents_stems_and_reads_updateable_synonyms_at_search_time_only() -> None:
    body = es.index_body()
    analysis = body["settings"]["analysis"]
    assert analysis["filter"]["search_synonyms"] == {"type": "synonym_graph", "synonyms_set": es.SYNONYMS_SET,
                                                     "updateable": True}
    assert "search_synonyms" not in analysis["analyzer"]["folded"]["filter"]
    assert analysis["analyzer"]["folded_search"]["filter"][:3] == ["lowercase", "asciifolding", "search_synonyms"]
    properties = body["mappings"]["properties"]
    assert body["mappings"]["dynamic"] == "strict"
    assert properties["name"]["search_analyzer"] == "folded_search"
    assert properties["name"]["fields"]["suggest"]["type"] == "search_as_you_type"
    assert set(es.document_source(DOC)) == set(properties)  # strict mapping: every field sent is mapped


def test_a_document_carries_attribute_pairs_and_sku_text() -> None:
    source = es.document_source(DOC)
    assert source["attribute_pairs"] == ["color\u001fBlack", "color\u001fWhite"]
    assert source["sku_text"] == "nc-0042-1" and source["min_price"] == 129.0
    assert es.bulk_actions("products-1", [DOC]) == [
        {"_op_type": "index", "_index": "products-1", "_id": "42", "_source": source}]


def test_each_word_is_fuzzy_auto_with_a_prefix_alternative_and_synonyms() -> None:
    body = es.search_body(request_for("sofa bed", groups=[["sofa", "couch"]]))
    first, second = body["query"]["bool"]["must"]
    fuzzy, prefix, synonym = first["bool"]["should"]
    assert fuzzy["multi_match"] | {} == {"query": "sofa", "fields": es.FIELDS, "type": "best_fields",
                                        "operator": "and", "fuzziness": "AUTO:4,8", "prefix_length": 1}
    assert prefix["multi_match"]["type"] == "bool_prefix"
    assert synonym["multi_match"]["query"] == "couch"
    assert len(second["bool"]["should"]) == 2
    assert es.FIELDS[0] == "name^4" and es.FIELDS[-1] == "description"
    assert body["suggest"]["did_you_mean"]["term"]["field"] == "name"


def test_an_sku_is_an_exact_boosted_term() -> None:
    body = es.search_body(request_for("NC-0042-1"))
    assert {"term": {"skus": {"value": "nc-0042-1", "boost": es.SKU_BOOST}}} in body["query"]["bool"]["should"]


@pytest.mark.parametrize("query", ["kettle' OR 1=1", "name:kettle* AND (x)", "{\"match_all\": {}}", "a & | ! \\"])
def test_operators_only_ever_reach_match_queries_as_words(query: str) -> None:
    body = es.search_body(request_for(query))
    text = repr(body)
    assert "query_string" not in text and "simple_query_string" not in text
    for clause in body["query"]["bool"]["must"]:
        for option in clause["bool"]["should"]:
            assert option["multi_match"]["query"].replace(" ", "").isalnum()


def test_filters_go_to_post_filter_and_each_facet_ignores_only_its_own() -> None:
    filters = SearchFilters(brands=("sonora",), price_min=Decimal("10"), in_stock=True,
                            attributes=(("color", ("Black",)),))
    body = es.search_body(request_for("headphones", filters))
    everything = body["post_filter"]["bool"]["filter"]
    assert {"terms": {"brand.folded": ["sonora"]}} in everything
    assert {"range": {"min_price": {"gte": 10.0}}} in everything
    assert {"term": {"in_stock": True}} in everything
    assert {"terms": {"attribute_pairs": ["color\u001fBlack"]}} in everything
    brand_scope = body["aggs"]["brand"]["filter"]["bool"]["filter"]
    assert {"terms": {"brand.folded": ["sonora"]}} not in brand_scope and len(brand_scope) == 3
    color_scope = body["aggs"]["attribute_0"]["filter"]["bool"]["filter"]
    assert {"terms": {"attribute_pairs": ["color\u001fBlack"]}} not in color_scope and len(color_scope) == 3
    assert body["aggs"]["attribute_0"]["aggs"]["values"]["terms"]["include"] == "color\u001f.*"
    assert body["aggs"]["category"]["filter"]["bool"]["filter"] == everything
    assert body["query"] != body["post_filter"]


@pytest.mark.parametrize(("sort", "expected"), [
    ("RELEVANCE", ["_score", {"in_stock": "desc"}, {"popularity": "desc"}, {"product_id": "desc"}]),
    ("PRICE_ASC", [{"min_price": "asc"}, {"product_id": "asc"}]),
    ("NEWEST", [{"created_at": "desc"}, {"product_id": "desc"}]),
])
def test_sorts_and_pages(sort: str, expected: list) -> None:
    body = es.search_body(parse_request("kettle", first=7, after="bzoxNA", filters=SearchFilters(), sort=sort,
                                        synonym_groups=[]))
    assert body["sort"] == expected and body["from"] == 14 and body["size"] == 7


def test_browse_mode_matches_all() -> None:
    body = es.search_body(request_for("", SearchFilters(category_slugs=("audio",))))
    assert body["query"] == {"match_all": {}} and "suggest" not in body


def test_a_response_becomes_hits_facets_and_did_you_mean() -> None:
    request = request_for("hedphones", SearchFilters(brands=("sonora",)))
    response = {
        "hits": {"total": {"value": 2}, "hits": [
            {"_id": "42", "_source": es.document_source(DOC),
             "highlight": {"description": ["Closed-back <em>headphones</em>"],
                           "name": ["Sonora Aero <em>Headphones</em>"]}},
            {"_id": "43", "_source": {"slug": "studio-43", "name": "Studio 43", "brand": None, "min_price": 19.9,
                                      "currency": "EUR"}}]},
        "aggregations": {
            "category": {"values": {"buckets": [{"key": "audio", "doc_count": 2}]}},
            "brand": {"values": {"buckets": [{"key": "Sonora", "doc_count": 2}, {"key": "Voltix", "doc_count": 1}]}},
            "price": {"values": {"buckets": [{"key": "100-200", "doc_count": 2}, {"key": "0-25", "doc_count": 0}]}},
            "inStock": {"values": {"buckets": [{"key": 1, "key_as_string": "true", "doc_count": 2}]}},
            "attributes": {"values": {"buckets": [{"key": "color\u001fBlack", "doc_count": 2}]}}},
        "suggest": {"did_you_mean": [{"text": "hedphones", "options": [{"text": "headphones"}]}]}}
    page = es.parse_search(request, response)
    assert [h.product_id for h in page.hits] == [42, 43] and page.total == 2
    # The card comes back from the document as it was indexed (the price to the catalogue's 2 places).
    assert page.hits[0].card == ProductCard(DOC.slug, DOC.name, DOC.brand, DOC.min_price, DOC.currency)
    assert page.hits[1].card == ProductCard("studio-43", "Studio 43", None, Decimal("19.90"), "EUR")
    assert [h.field for h in page.hits[0].highlights] == ["name", "description"]
    facets = {f.name: f for f in page.facets}
    assert [(v.value, v.count, v.selected) for v in facets["brand"].values] == [("Sonora", 2, True),
                                                                                ("Voltix", 1, False)]
    assert [v.value for v in facets["price"].values] == ["100-200"]
    assert facets["color"].values[0].value == "Black"
    assert page.did_you_mean == "headphones"


def test_hits_and_product_suggestions_bring_back_the_card_fields_only() -> None:
    assert es.search_body(request_for("kettle"))["_source"] == es.CARD_FIELDS
    assert set(es.CARD_FIELDS) <= set(es.document_source(DOC))
    prefix = request_for("sonora ae")
    assert es.suggest_body(prefix, 5)["_source"] == es.CARD_FIELDS
    found = es.parse_suggestions(prefix, {"hits": {"hits": [{"_id": "42", "_source": es.document_source(DOC)}]}}, 5)
    assert [(s.text, s.kind, s.product_id, s.card and s.card.slug) for s in found] == [
        ("Sonora Aero Headphones", "PRODUCT", 42, "sonora-aero-headphones")]


def test_synonym_rules() -> None:
    assert es.synonym_rules([["sofa", "couch"], ["tv", "television"]]) == [
        {"id": "group-0", "synonyms": "sofa, couch"}, {"id": "group-1", "synonyms": "tv, television"}]
    assert clauses_with_synonyms(["tv", "stand"], [["tv stand", "media console"]])[0].synonyms == (
        ("media", "console"),)


class RecordingClient:
    """Records the adapter's calls in order; answers like a server that has one old index behind the alias."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        outer = self

        class Indices:
            async def create(self, index: str, body: dict) -> None:
                outer.calls.append(("create", index))

            async def refresh(self, index: str) -> None:
                outer.calls.append(("refresh", index))

            async def get_alias(self, name: str, ignore_unavailable: bool) -> dict:
                return {"products-old": {"aliases": {name: {}}}}

            async def update_aliases(self, actions: list) -> None:
                outer.calls.append(("update_aliases", actions))

            async def delete(self, index: str) -> None:
                outer.calls.append(("delete", index))

        class Synonyms:
            async def put_synonym(self, id: str, synonyms_set: list) -> None:
                outer.calls.append(("put_synonym", synonyms_set))

        self.indices = Indices()
        self.synonyms = Synonyms()
        # helpers.async_bulk serialises the actions with the client's own serializers.
        self.transport = SimpleNamespace(serializers=SerializerCollection({"application/json": JsonSerializer()}))

    def options(self, **_: Any) -> RecordingClient:
        return self

    async def bulk(self, *args: Any, **kwargs: Any) -> SimpleNamespace:
        operations = kwargs.get("operations") or kwargs.get("body") or (args[0] if args else [])
        self.calls.append(("bulk", len(operations)))
        return SimpleNamespace(body={"errors": False, "items": [{"index": {"status": 201}}] * (len(operations) // 2)})


async def test_a_rebuild_loads_a_new_index_then_swaps_the_alias_in_one_call() -> None:
    client = RecordingClient()
    engine = es.ElasticsearchSearch("http://unused", "products", client=client)
    index = await engine.rebuild([DOC], [["sofa", "couch"]])
    kinds = [kind for kind, _ in client.calls]
    assert kinds == ["put_synonym", "create", "bulk", "refresh", "update_aliases", "delete"]
    assert client.calls[4][1] == [{"remove": {"index": "products-old", "alias": "products"}},
                                  {"add": {"index": index, "alias": "products"}}]
    assert client.calls[5] == ("delete", "products-old")
