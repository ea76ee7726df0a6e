"""Search rules: validate and parse what the shopper typed, apply synonyms, page, log; keep the index in step
with catalog and inventory events. No GraphQL here; the backend (backends/) executes the parsed request."""
from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.errors import Forbidden
from kernel.ids import next_id
from kernel.money import parse_amount
from subgraphs.catalog.events import ProductSnapshot
from subgraphs.search import repository
from subgraphs.search.backends.base import (
    RESERVED_FACETS,
    Clause,
    IndexDocument,
    SearchEngine,
    SearchFilters,
    SearchPage,
    SearchRequest,
    Sort,
    Suggestion,
)
from subgraphs.search.cache import (
    GENERATION,
    SYNONYMS,
    LoggedSearch,
    OperationCacheState,
    drain_query_log,
)
from subgraphs.search.errors import InvalidSearch
from subgraphs.search.text import fold, sku_candidate, words

MAX_QUERY_LENGTH = 200
MAX_WORDS = 10
MAX_FIRST = 100
MAX_OFFSET = 10_000  # deep pages: as Elasticsearch's default max_result_window
MAX_FILTER_VALUES = 50
MAX_SYNONYM_TERMS = 20
REBUILD_BATCH = 1000  # documents per statement: ~20 parameters each, under asyncpg's 32,767


@dataclasses.dataclass(frozen=True, slots=True)
class AttributeFilterIn:
    name: str
    values: Sequence[str]


@dataclasses.dataclass(frozen=True, slots=True)
class SearchFilterIn:
    category_slugs: Sequence[str] | None = None
    brands: Sequence[str] | None = None
    price_min: str | None = None
    price_max: str | None = None
    in_stock: bool | None = None
    attributes: Sequence[AttributeFilterIn] | None = None
    rating_min: float | None = None


# ---- input -----------------------------------------------------------------------------------------------------

def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    kind, _, number = raw.partition(":")
    if kind != "o" or not number.isascii() or not number.isdigit() or int(number) > MAX_OFFSET:
        raise InvalidSearch("after is not a cursor of this search", field="after")
    return int(number)


def _strings(values: Sequence[str] | None, field: str) -> list[str]:
    values = list(values or [])
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidSearch(f"{field}: at most {MAX_FILTER_VALUES} values", field=field)
    if any(not v.strip() or len(v) > 200 for v in values):
        raise InvalidSearch(f"{field}: values must be 1-200 characters", field=field)
    return values


def parse_filters(filter_in: SearchFilterIn | None, known_attributes: set[str] | None = None) -> SearchFilters:
    if filter_in is None:
        return SearchFilters()
    if filter_in.rating_min is not None:
        raise InvalidSearch("ratingMin is not available: products have no ratings yet", field="filter.ratingMin")
    prices: dict[str, Decimal | None] = {}
    for field in ("price_min", "price_max"):
        raw = getattr(filter_in, field)
        name = "filter." + ("priceMin" if field == "price_min" else "priceMax")
        prices[field] = None if raw is None else parse_amount(raw, field=name, allow_zero=True)
    low, high = prices["price_min"], prices["price_max"]
    if low is not None and high is not None and low > high:
        raise InvalidSearch("filter.priceMin is above filter.priceMax", field="filter.priceMin")
    attributes: list[tuple[str, tuple[str, ...]]] = []
    for attribute in filter_in.attributes or []:
        if attribute.name in RESERVED_FACETS:
            raise InvalidSearch(f"{attribute.name!r} is not an attribute facet; use its own filter field",
                                field="filter.attributes")
        if known_attributes is not None and attribute.name not in known_attributes:
            raise InvalidSearch(f"unknown facet {attribute.name[:50]!r}", field="filter.attributes")
        values = _strings(attribute.values, "filter.attributes.values")
        if values:
            attributes.append((attribute.name, tuple(values)))
    return SearchFilters(
        category_slugs=tuple(s.strip().lower() for s in _strings(filter_in.category_slugs, "filter.categorySlugs")),
        brands=tuple(fold(b.strip()) for b in _strings(filter_in.brands, "filter.brands")),
        price_min=low, price_max=high, in_stock=bool(filter_in.in_stock), attributes=tuple(attributes))


def phrases(query_words: Sequence[str], longest: int = 4) -> list[str]:
    """Every run of up to `longest` consecutive words: the synonym terms the query could contain."""
    return [" ".join(query_words[i:i + n]) for n in range(1, longest + 1) for i in range(len(query_words) - n + 1)]


def clauses_with_synonyms(query_words: Sequence[str], groups: Sequence[Sequence[str]]) -> tuple[Clause, ...]:
    """Words as clauses; where a synonym term (one or more words) matches at a position, that span becomes one
    clause whose alternatives are the group's other terms. Longest term first."""
    terms: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for group in groups:
        phrases = [tuple(t.split()) for t in group]
        for phrase in phrases:
            terms.setdefault(phrase, []).extend(p for p in phrases if p != phrase)
    longest = max((len(t) for t in terms), default=1)
    clauses: list[Clause] = []
    i = 0
    while i < len(query_words):
        for size in range(min(longest, len(query_words) - i), 0, -1):
            span = tuple(query_words[i:i + size])
            if span in terms:
                clauses.append(Clause(words=span, synonyms=tuple(dict.fromkeys(terms[span]))))
                i += size
                break
        else:
            clauses.append(Clause(words=(query_words[i],)))
            i += 1
    return tuple(clauses)


def parse_request(query: str, *, first: int, after: str | None, filters: SearchFilters, sort: Sort,
                  synonym_groups: Sequence[Sequence[str]]) -> SearchRequest:
    if not 1 <= first <= MAX_FIRST:
        raise InvalidSearch(f"first must be between 1 and {MAX_FIRST}", field="first")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidSearch(f"query is at most {MAX_QUERY_LENGTH} characters", field="query")
    query_words = words(query)[:MAX_WORDS]
    if not query_words and filters.empty:
        raise InvalidSearch("query needs at least one letter or digit (or give a filter to browse)", field="query")
    offset = decode_cursor(after) if after else 0
    return SearchRequest(text=" ".join(query_words), clauses=clauses_with_synonyms(query_words, synonym_groups),
                         sku=sku_candidate(query), filters=filters, sort=sort, offset=offset, limit=first)


# ---- reads -------------------------------------------------------------------------------------------------------

async def search(session: AsyncSession, engine: SearchEngine, *, query: str, first: int, after: str | None,
                 filter_in: SearchFilterIn | None, sort: Sort, user_id: int | None,
                 cached: OperationCacheState | None = None) -> tuple[SearchRequest, SearchPage]:
    """`cached`: the response cache's state when this search's answer is cached (cache.py): synonyms come from
    the in-process copy of its generation, and the search is logged with the answer (the query-log stream)
    rather than by a row written here."""
    known = None
    if filter_in is not None and filter_in.attributes:
        known = await repository.attribute_names(session, [a.name for a in filter_in.attributes])
    filters = parse_filters(filter_in, known)
    groups = await _synonym_groups_touching(session, phrases(words(query)[:MAX_WORDS]), cached)
    request = parse_request(query, first=first, after=after, filters=filters, sort=sort, synonym_groups=groups)
    page = await engine.search(session, request)
    if request.offset == 0 and request.text:
        if cached is not None and cached.generation is not None:
            cached.searches.append(LoggedSearch(request.text, page.total))
        else:
            await repository.log_query(session, {"id": next_id(), "query": request.text, "result_count": page.total,
                                                 "user_id": user_id})
    return request, page


async def _synonym_groups_touching(session: AsyncSession, terms: Sequence[str],
                                   cached: OperationCacheState | None) -> list[list[str]]:
    if not terms:
        return []
    if cached is not None and cached.generation is not None:
        return await SYNONYMS.groups_touching(session, cached.generation, terms)
    return await repository.synonym_groups_touching(session, terms)


async def suggestions(session: AsyncSession, engine: SearchEngine, *, prefix: str, first: int,
                      cached: OperationCacheState | None = None) -> list[Suggestion]:
    if not 1 <= first <= 20:
        raise InvalidSearch("first must be between 1 and 20", field="first")
    if len(prefix) > MAX_QUERY_LENGTH:
        raise InvalidSearch(f"prefix is at most {MAX_QUERY_LENGTH} characters", field="prefix")
    if not words(prefix):
        return []
    groups = await _synonym_groups_touching(session, phrases(words(prefix)[:MAX_WORDS]), cached)
    request = parse_request(prefix, first=first, after=None, filters=SearchFilters(), sort="RELEVANCE",
                            synonym_groups=groups)
    return await engine.suggest(session, request, first)


def _require_admin(caller: Principal) -> None:
    if not caller.has_role("ADMIN"):
        raise Forbidden("Only admins manage search")


async def synonym_groups(session: AsyncSession, caller: Principal) -> list[list[str]]:
    _require_admin(caller)
    return await repository.synonym_groups(session)


async def set_synonyms(session: AsyncSession, caller: Principal, terms: Sequence[str],
                       engine: SearchEngine | None = None, redis: Redis | None = None) -> list[str]:
    """Makes `terms` one synonym group, replacing any group sharing a term with it; a single term takes that
    term's group away. Applied to the next query (parsing reads the groups), so nothing is reindexed; given
    the subgraph's `redis`, cached answers and synonyms are dropped once the change commits."""
    _require_admin(caller)
    cleaned = list(dict.fromkeys(" ".join(words(t)) for t in terms))
    if not cleaned or len(cleaned) > MAX_SYNONYM_TERMS or any(not t or len(t) > 60 for t in cleaned) \
            or len(terms) > MAX_SYNONYM_TERMS:
        raise InvalidSearch(f"terms: 1-{MAX_SYNONYM_TERMS} distinct terms of letters or digits, each up to 60 "
                            "characters (one term removes its group)", field="terms")
    if any(len(t.split()) > 4 for t in cleaned):
        raise InvalidSearch("terms: a term has at most 4 words", field="terms")
    await repository.replace_synonym_group(session, next_id(), cleaned)
    GENERATION.bump_after_commit(session, redis)
    if engine is not None:
        # Elasticsearch's synonyms set follows the table before this commits: a failure refuses the change.
        await engine.set_synonyms(await repository.synonym_groups(session))
    return cleaned if len(cleaned) >= 2 else []


@dataclasses.dataclass(frozen=True, slots=True)
class Insights:
    top_queries: list[tuple[str, int]]
    zero_result_queries: list[tuple[str, int]]
    searches: int
    searches_with_click: int

    @property
    def click_through_rate(self) -> float:
        return round(self.searches_with_click / self.searches, 4) if self.searches else 0.0


async def insights(session: AsyncSession, caller: Principal, days: int, redis: Redis | None = None) -> Insights:
    """Given the subgraph's `redis`, the searches still in the query-log stream are drained first, so every
    search served so far is counted."""
    _require_admin(caller)
    if not 1 <= days <= 365:
        raise InvalidSearch("days must be between 1 and 365", field="days")
    if redis is not None:
        await drain_query_log(session, redis)
    since = datetime.now(UTC) - timedelta(days=days)
    searches, clicked = await repository.search_and_click_counts(session, since)
    return Insights(top_queries=await repository.top_queries(session, since, zero_results=False, limit=20),
                    zero_result_queries=await repository.top_queries(session, since, zero_results=True, limit=20),
                    searches=searches, searches_with_click=min(clicked, searches))


async def track_click(session: AsyncSession, *, user_id: int | None, query: str, product_id: int,
                      position: int) -> bool:
    if not 1 <= position <= MAX_OFFSET + MAX_FIRST:
        raise InvalidSearch("position is the 1-based rank of the clicked result", field="position")
    text = " ".join(words(query)[:MAX_WORDS])
    if not text or len(query) > MAX_QUERY_LENGTH:
        raise InvalidSearch("query is the search that was clicked", field="query")
    await repository.log_click(session, {"id": next_id(), "query": text, "product_id": product_id,
                                         "position": position, "user_id": user_id})
    await repository.bump_popularity(session, product_id)
    return True


# ---- the index, fed by events -------------------------------------------------------------------------------------

def _attributes(product: ProductSnapshot) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for variant in product.variants:
        for name, value in variant.attributes.items():
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                values = merged.setdefault(str(name), [])
                if str(value) not in values:
                    values.append(str(value))
    return merged


def _document_values(product: ProductSnapshot) -> dict[str, Any]:
    attributes = _attributes(product)
    skus = [fold(v.sku) for v in product.variants]
    keywords = [value for values in attributes.values() for value in values] + list(product.tags)
    return {"product_id": product.product_id, "slug": product.slug, "name": product.name, "brand": product.brand,
            "description": product.description, "category_id": product.category_id,
            "category_slugs": list(product.category_slugs), "category_names": list(product.category_names),
            "skus": skus, "sku_text": " ".join(skus), "category_text": " ".join(product.category_names),
            "attributes": attributes, "keyword_text": " ".join(keywords), "min_price": product.min_price,
            "currency": product.currency, "created_at": product.created_at,
            "source_updated_at": product.updated_at}


def _vocabulary(product: ProductSnapshot) -> list[tuple[str, str, str]]:
    # Words with digits (model numbers, sizes) are matched as typed, never corrected: they stay out, which
    # also keeps the vocabulary (and its trigram lookups) small in a large catalogue.
    texts = [product.name, product.brand or "", " ".join(product.category_names), " ".join(product.tags),
             product.description or "", *(v for values in _attributes(product).values() for v in values)]
    entries = [(w, "WORD", w) for text in texts for w in words(text) if w.isalpha()]
    if product.brand and words(product.brand):
        entries.append((" ".join(words(product.brand)), "BRAND", product.brand))
    entries += [(" ".join(words(name)), "CATEGORY", name) for name in product.category_names if words(name)]
    return entries


async def lock_vocabulary_of(session: AsyncSession, products: Sequence[ProductSnapshot]) -> None:
    """Before a consumer batch that indexes these products: their vocabulary rows, locked in one order
    (repository.lock_vocabulary says why)."""
    await repository.lock_vocabulary(session, {(w, k) for p in products for (w, k, _) in _vocabulary(p)})


async def index_product(session: AsyncSession, product: ProductSnapshot, redis: Redis | None = None) -> bool:
    """Apply a product.created / product.updated snapshot; False when an older snapshot arrives late. Given
    the subgraph's `redis`, as every index writer here: cached answers are dropped once the change commits."""
    seen = await repository.document_version(session, product.product_id)
    if seen is not None and seen > product.updated_at:
        return False
    GENERATION.bump_after_commit(session, redis)
    await repository.upsert_document(session, _document_values(product))
    await repository.attach_variants(session, product.product_id, [v.variant_id for v in product.variants])
    await repository.refresh_in_stock(session, product.product_id)
    await repository.add_vocabulary(session, _vocabulary(product))
    return True


async def remove_product(session: AsyncSession, product_id: int, redis: Redis | None = None) -> bool:
    removed = await repository.delete_documents(session, [product_id]) > 0
    if removed:
        GENERATION.bump_after_commit(session, redis)
    return removed


async def apply_stock(session: AsyncSession, variant_id: int, available: int, in_stock: bool,
                      redis: Redis | None = None) -> int | None:
    """Record a variant's stock; returns the product id whose in-stock flag was recomputed, if known."""
    product_id = await repository.set_variant_stock(session, variant_id, available, in_stock)
    # Searches show only the product's in-stock flag: most stock changes (a sale of one of many) leave the
    # cached answers true.
    if product_id is not None and await repository.refresh_in_stock(session, product_id):
        GENERATION.bump_after_commit(session, redis)
    return product_id


async def rebuild(session: AsyncSession, products: Sequence[ProductSnapshot], redis: Redis | None = None) -> int:
    """Make the index exactly these products, in one transaction: searches keep reading the previous index
    (MVCC) until it commits, so a rebuild needs no downtime. The vocabulary is rebuilt from scratch."""
    GENERATION.bump_after_commit(session, redis)
    await repository.clear_vocabulary(session)
    # The vocabulary is written once, at the end: written per batch, each word's row was rewritten by every
    # batch (100 versions of each at 100,000 products), and until a vacuum the trigram index the typo
    # correction reads walked all of them (~1,500 buffers for 382 words).
    word_counts: dict[tuple[str, str], int] = {}
    word_labels: dict[tuple[str, str], str] = {}
    for start in range(0, len(products), REBUILD_BATCH):
        batch = products[start:start + REBUILD_BATCH]
        seen = await repository.document_versions(session, [p.product_id for p in batch])
        # An event applied since the catalog was read may be newer than what was read: it stays.
        fresh = [p for p in batch if p.product_id not in seen or seen[p.product_id] <= p.updated_at]
        await repository.upsert_documents(session, [_document_values(p) for p in fresh])
        await repository.attach_variants_of(session, {p.product_id: [v.variant_id for v in p.variants] for p in fresh})
        await repository.refresh_in_stock_of(session, [p.product_id for p in fresh])
        repository.count_vocabulary([entry for p in batch for entry in _vocabulary(p)], word_counts, word_labels)
    await repository.add_counted_vocabulary(session, word_counts, word_labels)
    gone = await repository.product_ids_not_in(session, [p.product_id for p in products])
    await repository.delete_documents(session, gone)
    return len(products)


async def index_documents(session: AsyncSession, product_ids: Sequence[int]) -> list[IndexDocument]:
    """The documents as a secondary backend (Elasticsearch) indexes them."""
    return [IndexDocument(
        product_id=r.product_id, slug=r.slug, name=r.name, brand=r.brand, description=r.description,
        tags=tuple(r.keyword_text.split()), category_id=r.category_id, category_slugs=tuple(r.category_slugs),
        category_names=tuple(r.category_names), skus=tuple(r.skus), attributes=dict(r.attributes),
        min_price=r.min_price, currency=r.currency, in_stock=r.in_stock, popularity=r.popularity,
        created_at=r.created_at, updated_at=r.source_updated_at)
        for r in await repository.documents(session, product_ids)]
