"""GraphQL adapter of the search domain: validates the shape of input, calls service.py, maps the page.

`Product` is catalog's entity. Search answers the fields a result list shows (id, slug, name, brand,
minPrice: its index has them, and catalog marks them shareable) and the router asks catalog, in one
`_entities` call for the whole page, only for any other field the client wants. Search's key is not
resolvable: the router never asks search for a product it did not return itself, so these copies serve only
search's own results (which follow the catalog within about a second, like the results themselves).
"""
from __future__ import annotations

import enum

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from kernel.graphql import Info, Money, PageInfo, build_schema
from kernel.ids import parse_id
from subgraphs.search import service
from subgraphs.search.backends.base import Facet as FacetData
from subgraphs.search.backends.base import ProductCard, SearchEngine
from subgraphs.search.cache import OperationCacheState, SearchResponseCache


@strawberry.federation.type(directives=[Key(fields=FieldSet("id"), resolvable=False)])
class Product:
    """Catalog's product, with the card fields of a search result from the index (descriptions: catalog's)."""
    id: strawberry.ID
    slug: str = strawberry.federation.field(shareable=True)
    name: str = strawberry.federation.field(shareable=True)
    brand: str | None = strawberry.federation.field(shareable=True)
    min_price: Money = strawberry.federation.field(shareable=True)

    @classmethod
    def from_card(cls, product_id: int, card: ProductCard) -> Product:
        return cls(id=strawberry.ID(str(product_id)), slug=card.slug, name=card.name, brand=card.brand,
                   min_price=Money.of(card.min_price, card.currency))


@strawberry.enum
class SearchSort(enum.Enum):
    RELEVANCE = "RELEVANCE"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    NEWEST = "NEWEST"


@strawberry.enum
class SearchSuggestionKind(enum.Enum):
    PRODUCT = "PRODUCT"
    CATEGORY = "CATEGORY"
    BRAND = "BRAND"


@strawberry.input(description="Values of one attribute facet (e.g. name \"color\", values [\"Black\"]).")
class AttributeFilter:
    name: str
    values: list[str]


@strawberry.input(description=(
    "Narrows a search; each facet's counts ignore that facet's own selection. Without a query, browses."))
class SearchFilter:
    category_slugs: list[str] | None = strawberry.field(
        default=None, description="A category includes its subcategories.")
    brands: list[str] | None = None
    price_min: str | None = strawberry.field(default=None, description="Decimal string, inclusive.")
    price_max: str | None = strawberry.field(default=None, description="Decimal string, inclusive.")
    in_stock: bool | None = strawberry.field(default=None, description="true: only products in stock.")
    attributes: list[AttributeFilter] | None = None
    rating_min: float | None = strawberry.field(default=None, description="Not available yet (BAD_USER_INPUT).")

    def to_service(self) -> service.SearchFilterIn:
        return service.SearchFilterIn(
            category_slugs=self.category_slugs, brands=self.brands, price_min=self.price_min,
            price_max=self.price_max, in_stock=self.in_stock, rating_min=self.rating_min,
            attributes=[service.AttributeFilterIn(a.name, a.values) for a in self.attributes or []])


@strawberry.type(description="A matched field with the query's words wrapped in <em>.")
class SearchHighlight:
    field: str
    snippet: str


@strawberry.type
class SearchEdge:
    cursor: str
    node: Product | None = strawberry.field(description=(
        "Null only when a field catalog answers (not id, slug, name, brand or minPrice) is asked of a product "
        "deleted in the instant before the index heard of it (the index follows the catalog within about a "
        "second): the rest of the page still answers."))
    highlights: list[SearchHighlight]


@strawberry.type
class FacetValue:
    value: str = strawberry.field(description="What to put in the filter to select it.")
    label: str
    count: int
    selected: bool


@strawberry.type(description=(
    "category, brand, price (ranges), inStock, then one per attribute (its name, e.g. color)."))
class Facet:
    name: str
    values: list[FacetValue]

    @classmethod
    def from_data(cls, facet: FacetData) -> Facet:
        return cls(name=facet.name, values=[FacetValue(value=v.value, label=v.label, count=v.count,
                                                        selected=v.selected) for v in facet.values])


@strawberry.type
class SearchResult:
    edges: list[SearchEdge]
    page_info: PageInfo
    total_count: int
    facets: list[Facet]
    did_you_mean: str | None = strawberry.field(
        description="A close spelling of the query that the catalog knows, when the words typed find little.")


@strawberry.type
class SearchSuggestion:
    text: str
    kind: SearchSuggestionKind
    product: Product | None


@strawberry.type
class QueryCount:
    query: str
    count: int


@strawberry.type
class SearchInsights:
    top_queries: list[QueryCount]
    zero_result_queries: list[QueryCount]
    searches: int
    click_through_rate: float = strawberry.field(
        description="Share of searched queries (distinct texts) with at least one trackSearchClick.")


def _engine(info: Info) -> SearchEngine:
    engine: SearchEngine = info.context.resources.extras["search_engine"]
    return engine


def _user_id(info: Info) -> int | None:
    user = info.context.user
    return user.user_id if user is not None else None


@strawberry.type
class Query:
    @strawberry.field(description=(
        "Full-text product search: relevance (name and SKU first), prefixes, plurals, accents, typos, "
        "synonyms; facets; highlights. `first` 1..100. An empty query browses when a filter is given."))
    async def search(self, info: Info, query: str, first: int = 20, after: str | None = None,
                     filter: SearchFilter | None = None,
                     sort: SearchSort = SearchSort.RELEVANCE) -> SearchResult:
        ctx = info.context
        request, page = await service.search(
            await ctx.session(), _engine(info), query=query, first=first, after=after,
            filter_in=filter.to_service() if filter else None, sort=sort.value, user_id=_user_id(info),
            cached=ctx.loader(OperationCacheState))
        edges = [SearchEdge(cursor=service.encode_cursor(request.offset + i + 1),
                            node=Product.from_card(hit.product_id, hit.card),
                            highlights=[SearchHighlight(field=h.field, snippet=h.snippet) for h in hit.highlights])
                 for i, hit in enumerate(page.hits)]
        has_next = request.offset + len(edges) < min(page.total, service.MAX_OFFSET)
        return SearchResult(edges=edges, total_count=page.total,
                            page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
                            facets=[Facet.from_data(f) for f in page.facets], did_you_mean=page.did_you_mean)

    @strawberry.field(description="Search-as-you-type: categories, brands and products for a prefix; typo tolerant.")
    async def search_suggestions(self, info: Info, prefix: str, first: int = 8) -> list[SearchSuggestion]:
        ctx = info.context
        found = await service.suggestions(await ctx.session(), _engine(info), prefix=prefix, first=first,
                                          cached=ctx.loader(OperationCacheState))
        return [SearchSuggestion(text=s.text, kind=SearchSuggestionKind(s.kind),
                                 product=Product.from_card(s.product_id, s.card)
                                 if s.product_id is not None and s.card is not None else None)
                for s in found]

    @strawberry.field(description="ADMIN only: every synonym group.")
    async def search_synonyms(self, info: Info) -> list[list[str]]:
        ctx = info.context
        return await service.synonym_groups(await ctx.session(), ctx.require_user())

    @strawberry.field(description="ADMIN only: what shoppers searched over the last `days` (1..365).")
    async def search_insights(self, info: Info, days: int = 7) -> SearchInsights:
        ctx = info.context
        found = await service.insights(await ctx.session(), ctx.require_user(), days, ctx.redis)
        return SearchInsights(top_queries=[QueryCount(query=q, count=n) for q, n in found.top_queries],
                              zero_result_queries=[QueryCount(query=q, count=n) for q, n in found.zero_result_queries],
                              searches=found.searches, click_through_rate=found.click_through_rate)


@strawberry.type
class Mutation:
    @strawberry.mutation(description=(
        "ADMIN only. Makes `terms` one synonym group (e.g. [\"sofa\", \"couch\"]), replacing groups that share "
        "a term; one term removes its group. Applies to the next search, without a reindex. Returns the group."))
    async def set_search_synonyms(self, info: Info, terms: list[str]) -> list[str]:
        ctx = info.context
        return await service.set_synonyms(await ctx.session(), ctx.require_user(), terms, _engine(info), ctx.redis)

    @strawberry.mutation(description=(
        "Records that a shopper opened result `position` (1-based) of `query`: insights' click-through and "
        "the product's popularity (which breaks relevance ties)."))
    async def track_search_click(self, info: Info, query: str, product_id: strawberry.ID, position: int) -> bool:
        ctx = info.context
        return await service.track_click(await ctx.session(), user_id=_user_id(info), query=query,
                                         product_id=parse_id(product_id, field="productId"), position=position)


schema = build_schema(query=Query, mutation=Mutation, types=[Product], extensions=[SearchResponseCache])
