"""The Elasticsearch backend (ELASTICSEARCH_URL): the same requests and answers as the Postgres backend, on an
index behind an alias.

- Index: `<alias>-<timestamp>` behind the alias searches read. A rebuild creates a new index, bulk-loads it
  (`helpers.async_bulk`), swaps the alias in one `update_aliases` call and drops the old index: no downtime.
- Analysis: lower case + ASCII folding + english stemming at index and search time (accents and plurals do
  not matter); the search analyzer adds a `synonym_graph` filter over the synonyms set `SYNONYMS_SET`,
  marked `updateable`, so `put_synonym` changes synonyms without a reindex (Elasticsearch reloads the
  search analyzers itself). `name.suggest` is a `search_as_you_type` field for suggestions.
- Query: each clause is a `multi_match` (best_fields, name and SKUs weighted most) with `fuzziness: AUTO:4,8`,
  or'ed with a `bool_prefix` match (prefixes) and the clause's synonyms; an exact SKU is a boosted `term`.
  Text only ever goes into match queries, never into `query_string`, so operators are plain text.
- Facets: filters go into `post_filter`; each facet's aggregation is wrapped in a `filter` aggregation with
  every OTHER facet's filter, so choosing a value keeps that facet's other values (the post_filter pattern).

The request bodies and mappings are built by pure functions (tested in tests/search/test_elasticsearch_bodies.py);
no Elasticsearch server runs on the development machines, so this adapter has not been run against one.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from subgraphs.search.backends.base import (
    PRICE_BUCKETS,
    Facet,
    FacetValue,
    Highlight,
    Hit,
    IndexDocument,
    ProductCard,
    SearchFilters,
    SearchPage,
    SearchRequest,
    Suggestion,
    price_bucket_key,
    price_bucket_label,
)
from subgraphs.search.text import edit_distance, fold, typo_budget, words

SYNONYMS_SET = "nexuscart-search"
ATTRIBUTE_SEPARATOR = "\u001f"  # name<US>value in `attribute_pairs` (neither part can contain a control char)
SKU_BOOST = 100.0
FIELDS = ["name^4", "sku_text^4", "brand^2", "category_names^2", "keyword_text^1.5", "description"]


def index_body() -> dict[str, Any]:
    """Settings and mappings of a new index."""
    folding = ["lowercase", "asciifolding", "english_possessive", "english_stemmer"]
    return {
        "settings": {
            "number_of_shards": 1,
            "analysis": {
                "filter": {
                    "english_possessive": {"type": "stemmer", "language": "possessive_english"},
                    "english_stemmer": {"type": "stemmer", "language": "english"},
                    "search_synonyms": {"type": "synonym_graph", "synonyms_set": SYNONYMS_SET, "updateable": True},
                },
                "analyzer": {
                    "folded": {"type": "custom", "tokenizer": "standard", "filter": folding},
                    "folded_search": {"type": "custom", "tokenizer": "standard",
                                      "filter": ["lowercase", "asciifolding", "search_synonyms",
                                                 "english_possessive", "english_stemmer"]},
                },
                "normalizer": {"folded_keyword": {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "product_id": {"type": "long"},
                "slug": {"type": "keyword", "index": False},
                "name": {"type": "text", "analyzer": "folded", "search_analyzer": "folded_search",
                         "fields": {"suggest": {"type": "search_as_you_type", "analyzer": "folded"}}},
                "sku_text": {"type": "text", "analyzer": "folded"},
                "skus": {"type": "keyword", "normalizer": "folded_keyword"},
                "brand": {"type": "text", "analyzer": "folded", "search_analyzer": "folded_search",
                          "fields": {"keyword": {"type": "keyword"},
                                     "folded": {"type": "keyword", "normalizer": "folded_keyword"},
                                     "suggest": {"type": "search_as_you_type", "analyzer": "folded"}}},
                "description": {"type": "text", "analyzer": "folded", "search_analyzer": "folded_search"},
                "category_slugs": {"type": "keyword"},
                "category_names": {"type": "text", "analyzer": "folded", "search_analyzer": "folded_search",
                                   "fields": {"keyword": {"type": "keyword"},
                                              "suggest": {"type": "search_as_you_type", "analyzer": "folded"}}},
                "keyword_text": {"type": "text", "analyzer": "folded", "search_analyzer": "folded_search"},
                "attribute_pairs": {"type": "keyword"},
                "min_price": {"type": "scaled_float", "scaling_factor": 100},
                "currency": {"type": "keyword"},
                "in_stock": {"type": "boolean"},
                "popularity": {"type": "integer"},
                "created_at": {"type": "date"},
                "updated_at": {"type": "date"},
            },
        },
    }


def document_source(document: IndexDocument) -> dict[str, Any]:
    return {
        "product_id": document.product_id, "slug": document.slug, "name": document.name,
        "sku_text": " ".join(document.skus), "skus": list(document.skus), "brand": document.brand,
        "description": document.description, "category_slugs": list(document.category_slugs),
        "category_names": list(document.category_names),
        "keyword_text": " ".join([v for values in document.attributes.values() for v in values] + list(document.tags)),
        "attribute_pairs": [f"{name}{ATTRIBUTE_SEPARATOR}{value}" for name, values in document.attributes.items()
                            for value in values],
        "min_price": float(document.min_price), "currency": document.currency, "in_stock": document.in_stock,
        "popularity": document.popularity, "created_at": document.created_at.isoformat(),
        "updated_at": document.updated_at.isoformat()}


# What a hit brings back of its document: the product card the subgraph answers itself (base.ProductCard).
CARD_FIELDS = ["slug", "name", "brand", "min_price", "currency"]


def card_of(source: dict[str, Any]) -> ProductCard:
    # min_price is indexed as a float (a scaled number would do too): back to the catalogue's 2 places.
    return ProductCard(slug=source["slug"], name=source["name"], brand=source.get("brand"),
                       min_price=Decimal(str(source["min_price"])).quantize(Decimal("0.01")),
                       currency=source["currency"])


def bulk_actions(index: str, documents: Sequence[IndexDocument]) -> list[dict[str, Any]]:
    return [{"_op_type": "index", "_index": index, "_id": str(d.product_id), "_source": document_source(d)}
            for d in documents]


def synonym_rules(groups: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    return [{"id": f"group-{i}", "synonyms": ", ".join(group)} for i, group in enumerate(groups)]


# ---- queries -------------------------------------------------------------------------------------------------

def _text_query(request: SearchRequest) -> dict[str, Any]:
    if not request.clauses:
        return {"match_all": {}}
    must = []
    for clause in request.clauses:
        typed = " ".join(clause.words)
        should: list[dict[str, Any]] = [
            {"multi_match": {"query": typed, "fields": FIELDS, "type": "best_fields", "operator": "and",
                             "fuzziness": "AUTO:4,8", "prefix_length": 1}},
            {"multi_match": {"query": typed, "fields": FIELDS, "type": "bool_prefix", "operator": "and"}},
        ]
        should += [{"multi_match": {"query": " ".join(s), "fields": FIELDS, "type": "phrase"}}
                   for s in clause.synonyms]
        must.append({"bool": {"should": should, "minimum_should_match": 1}})
    query: dict[str, Any] = {"bool": {"must": must}}
    if request.sku:
        # An exact SKU matches even when its parts are not words of the document, and comes first.
        query = {"bool": {"should": [query, {"term": {"skus": {"value": request.sku, "boost": SKU_BOOST}}}],
                          "minimum_should_match": 1}}
    return query


def filter_clauses(filters: SearchFilters) -> dict[str, dict[str, Any]]:
    """Facet name (or 'attr:<name>') -> its filter; each facet's aggregation leaves out its own."""
    clauses: dict[str, dict[str, Any]] = {}
    if filters.category_slugs:
        clauses["category"] = {"terms": {"category_slugs": list(filters.category_slugs)}}
    if filters.brands:
        clauses["brand"] = {"terms": {"brand.folded": list(filters.brands)}}
    if filters.price_min is not None or filters.price_max is not None:
        bounds: dict[str, float] = {}
        if filters.price_min is not None:
            bounds["gte"] = float(filters.price_min)
        if filters.price_max is not None:
            bounds["lte"] = float(filters.price_max)
        clauses["price"] = {"range": {"min_price": bounds}}
    if filters.in_stock:
        clauses["inStock"] = {"term": {"in_stock": True}}
    for name, values in filters.attributes:
        clauses[f"attr:{name}"] = {"terms": {"attribute_pairs": [f"{name}{ATTRIBUTE_SEPARATOR}{v}" for v in values]}}
    return clauses


def _scoped(clauses: dict[str, dict[str, Any]], *leave_out: str) -> dict[str, Any]:
    kept = [c for name, c in clauses.items() if name not in leave_out]
    return {"bool": {"filter": kept}} if kept else {"match_all": {}}


def search_body(request: SearchRequest) -> dict[str, Any]:
    clauses = filter_clauses(request.filters)
    price_ranges = [{"key": price_bucket_key(lo, hi), "from": float(lo), **({"to": float(hi)} if hi else {})}
                    for lo, hi in PRICE_BUCKETS]
    filtered_attributes = [name for name, _ in request.filters.attributes]
    aggs: dict[str, Any] = {
        "category": {"filter": _scoped(clauses, "category"),
                     "aggs": {"values": {"terms": {"field": "category_slugs", "size": 100}}}},
        "brand": {"filter": _scoped(clauses, "brand"),
                  "aggs": {"values": {"terms": {"field": "brand.keyword", "size": 100}}}},
        "price": {"filter": _scoped(clauses, "price"),
                  "aggs": {"values": {"range": {"field": "min_price", "ranges": price_ranges}}}},
        "inStock": {"filter": _scoped(clauses, "inStock"),
                    "aggs": {"values": {"terms": {"field": "in_stock", "size": 2}}}},
        # Attributes nobody filtered on: counted under every filter.
        "attributes": {"filter": _scoped(clauses),
                       "aggs": {"values": {"terms": {"field": "attribute_pairs", "size": 500}}}},
    }
    for i, name in enumerate(filtered_attributes):
        aggs[f"attribute_{i}"] = {
            "filter": _scoped(clauses, f"attr:{name}"),
            "aggs": {"values": {"terms": {"field": "attribute_pairs", "size": 200,
                                          "include": _exact_prefix_pattern(name + ATTRIBUTE_SEPARATOR)}}}}
    sort = {"RELEVANCE": ["_score", {"in_stock": "desc"}, {"popularity": "desc"}, {"product_id": "desc"}],
            "PRICE_ASC": [{"min_price": "asc"}, {"product_id": "asc"}],
            "PRICE_DESC": [{"min_price": "desc"}, {"product_id": "desc"}],
            "NEWEST": [{"created_at": "desc"}, {"product_id": "desc"}]}[request.sort]
    body: dict[str, Any] = {
        "query": _text_query(request), "post_filter": _scoped(clauses), "aggs": aggs, "sort": sort,
        "from": request.offset, "size": request.limit, "track_total_hits": True, "_source": CARD_FIELDS,
        "highlight": {"pre_tags": ["<em>"], "post_tags": ["</em>"],
                      "fields": {"name": {"number_of_fragments": 0}, "description": {"fragment_size": 150}}},
    }
    if request.clauses:
        body["suggest"] = {"text": request.text,
                           "did_you_mean": {"term": {"field": "name", "suggest_mode": "missing", "size": 1}}}
    return body


def _exact_prefix_pattern(prefix: str) -> str:
    """A terms-aggregation `include` regex matching values that start with `prefix` literally."""
    special = set(".?+*|{}[]()\"\\#@&<>~")
    return "".join("\\" + c if c in special else c for c in prefix) + ".*"


def parse_search(request: SearchRequest, response: dict[str, Any]) -> SearchPage:
    f = request.filters
    hits = []
    for hit in response["hits"]["hits"]:
        highlights = [Highlight(field, fragments[0]) for field, fragments in sorted(
            (hit.get("highlight") or {}).items(), key=lambda item: item[0] != "name") if fragments]
        hits.append(Hit(int(hit["_id"]), card_of(hit["_source"]), tuple(highlights)))
    aggs = response.get("aggregations", {})

    def buckets(name: str) -> list[dict[str, Any]]:
        return list(aggs.get(name, {}).get("values", {}).get("buckets", []))

    facets = [
        Facet("category", tuple(FacetValue(b["key"], b["key"], b["doc_count"], b["key"] in f.category_slugs)
                                for b in buckets("category"))),
        Facet("brand", tuple(FacetValue(b["key"], b["key"], b["doc_count"], fold(b["key"]) in f.brands)
                             for b in buckets("brand"))),
    ]
    bounds = {price_bucket_key(lo, hi): (lo, hi) for lo, hi in PRICE_BUCKETS}
    facets.append(Facet("price", tuple(
        FacetValue(b["key"], price_bucket_label(*bounds[b["key"]]), b["doc_count"],
                   _selected_range(bounds[b["key"]], f.price_min, f.price_max))
        for b in buckets("price") if b["doc_count"] > 0 and b["key"] in bounds)))
    facets.append(Facet("inStock", tuple(
        FacetValue(b.get("key_as_string", str(bool(b["key"])).lower()),
                   "In stock" if b["key"] in (1, True, "true") else "Out of stock", b["doc_count"],
                   f.in_stock and b["key"] in (1, True, "true")) for b in buckets("inStock"))))
    chosen = dict(f.attributes)
    attributes: dict[str, list[FacetValue]] = {}
    filtered = {name: i for i, (name, _) in enumerate(f.attributes)}
    for b in buckets("attributes"):
        name, _, value = b["key"].partition(ATTRIBUTE_SEPARATOR)
        if name not in filtered:
            attributes.setdefault(name, []).append(FacetValue(value, value, b["doc_count"], False))
    for name, i in filtered.items():
        for b in buckets(f"attribute_{i}"):
            _, _, value = b["key"].partition(ATTRIBUTE_SEPARATOR)
            attributes.setdefault(name, []).append(FacetValue(value, value, b["doc_count"], value in chosen[name]))
    facets += [Facet(name, tuple(sorted(values, key=lambda v: (-v.count, v.label))))
               for name, values in sorted(attributes.items())]
    did_you_mean = None
    corrections = {entry["text"]: entry["options"][0]["text"]
                   for entry in response.get("suggest", {}).get("did_you_mean", []) if entry.get("options")}
    if corrections:
        did_you_mean = " ".join(corrections.get(w, w) for c in request.clauses for w in c.words)
    total = response["hits"]["total"]
    return SearchPage(hits=tuple(hits), total=int(total["value"] if isinstance(total, dict) else total),
                      facets=tuple(facets), did_you_mean=did_you_mean)


def _selected_range(bucket: tuple[Decimal, Decimal | None], low: Decimal | None, high: Decimal | None) -> bool:
    if low is None and high is None:
        return False
    lo, hi = bucket
    return (low is None or lo >= low) and (high is None or (hi is not None and hi <= high))


def suggest_body(prefix: SearchRequest, first: int) -> dict[str, Any]:
    typed = " ".join(w for c in prefix.clauses for w in c.words)
    fields = ["name.suggest", "name.suggest._2gram", "name.suggest._3gram"]
    return {
        "size": first, "_source": CARD_FIELDS,
        "query": {"multi_match": {"query": typed, "type": "bool_prefix", "fields": fields, "fuzziness": "AUTO:4,8"}},
        "aggs": {
            "brands": {"filter": {"multi_match": {"query": typed, "type": "bool_prefix", "fuzziness": "AUTO:4,8",
                                                  "fields": ["brand.suggest", "brand.suggest._2gram"]}},
                       "aggs": {"values": {"terms": {"field": "brand.keyword", "size": 3}}}},
            "categories": {"filter": {"multi_match": {"query": typed, "type": "bool_prefix", "fuzziness": "AUTO:4,8",
                                                      "fields": ["category_names.suggest",
                                                                 "category_names.suggest._2gram"]}},
                           "aggs": {"values": {"terms": {"field": "category_names.keyword", "size": 10}}}},
        },
    }


def parse_suggestions(prefix: SearchRequest, response: dict[str, Any], first: int) -> list[Suggestion]:
    last = prefix.clauses[-1].words[-1] if prefix.clauses else ""
    found: list[Suggestion] = []
    aggs = response.get("aggregations", {})
    for agg, kind in (("categories", "CATEGORY"), ("brands", "BRAND")):
        for bucket in aggs.get(agg, {}).get("values", {}).get("buckets", []):
            label = bucket["key"]
            # A matching product counts all its category names (and parents'): keep those the prefix matches.
            if any(edit_distance(word[:len(last)], last) <= typo_budget(last) for word in words(label)):
                found.append(Suggestion(label, kind))  # type: ignore[arg-type]  # kind is one of the literals
    found = found[:min(3, first)]
    for hit in response["hits"]["hits"]:
        if len(found) >= first:
            break
        card = card_of(hit["_source"])
        found.append(Suggestion(card.name, "PRODUCT", int(hit["_id"]), card))
    return found


# ---- the adapter ------------------------------------------------------------------------------------------------

class ElasticsearchSearch:
    name = "elasticsearch"

    def __init__(self, url: str, alias: str, client: Any = None) -> None:
        if client is None:
            from elasticsearch import AsyncElasticsearch
            client = AsyncElasticsearch(url, request_timeout=10)
        self.client = client
        self.alias = alias

    async def aclose(self) -> None:
        await self.client.close()

    async def search(self, session: Any, request: SearchRequest) -> SearchPage:
        response = await self.client.search(index=self.alias, body=search_body(request))
        return parse_search(request, dict(response))

    async def suggest(self, session: Any, prefix: SearchRequest, first: int) -> list[Suggestion]:
        response = await self.client.search(index=self.alias, body=suggest_body(prefix, first))
        return parse_suggestions(prefix, dict(response), first)

    async def index(self, documents: list[IndexDocument]) -> None:
        from elasticsearch.helpers import async_bulk
        await async_bulk(self.client, bulk_actions(self.alias, documents), refresh="wait_for")

    async def remove(self, product_ids: list[int]) -> None:
        from elasticsearch.helpers import async_bulk
        actions = [{"_op_type": "delete", "_index": self.alias, "_id": str(p)} for p in product_ids]
        await async_bulk(self.client, actions, refresh="wait_for", ignore_status=(404,))

    async def set_synonyms(self, groups: Sequence[Sequence[str]]) -> None:
        # Elasticsearch reloads the search analyzers that use the set: no reindex.
        await self.client.synonyms.put_synonym(id=SYNONYMS_SET, synonyms_set=synonym_rules(groups))

    async def rebuild(self, documents: Sequence[IndexDocument], groups: Sequence[Sequence[str]]) -> str:
        """New index, bulk load, alias swap, old index dropped; returns the new index's name."""
        from elasticsearch.helpers import async_bulk
        await self.set_synonyms(groups)  # the set must exist before an index whose analyzer names it
        index = f"{self.alias}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
        await self.client.indices.create(index=index, body=index_body())
        await async_bulk(self.client, bulk_actions(index, documents))
        await self.client.indices.refresh(index=index)
        current = await self.client.indices.get_alias(name=self.alias, ignore_unavailable=True)
        old = list(dict(current)) if current else []
        actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": self.alias}} for name in old]
        actions.append({"add": {"index": index, "alias": self.alias}})
        await self.client.indices.update_aliases(actions=actions)
        for name in old:
            await self.client.indices.delete(index=name)
        return index
