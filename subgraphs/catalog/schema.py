"""GraphQL adapter of the catalog domain: validates input, calls service.py, maps documents to types.

Hot path note: product documents already hold their variants, so Product.variants, ProductVariant.price
and Product.category are plain attributes filled in `from_doc`; per-field async resolvers are what
makes Strawberry slow, and the browse query resolves hundreds of fields per page.
"""
from __future__ import annotations

import enum
from datetime import datetime
from collections.abc import AsyncGenerator
from typing import Any, Optional

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.scalars import JSON

from kernel.errors import BadUserInput
from subgraphs.catalog.errors import ProductNotFound
from kernel.graphql import RequestContext, build_schema
from kernel.ids import entity_key, parse_id
from kernel.response_cache import response_cache_extension
from subgraphs.catalog import cache, service
from subgraphs.catalog.dataloaders import (CatalogReads, ProductByIdLoader, ProductCountByCategoryIdLoader,
                                           VariantByIdLoader)
from subgraphs.catalog.service import CategoryRecord, CategoryTree, Doc


@strawberry.federation.type(shareable=True, description="An amount of money; amount is a decimal string.")
class Money:
    amount: str = strawberry.field(description="Decimal string with 2 places, e.g. \"19.99\"")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. \"USD\"")


@strawberry.federation.type(directives=[Key(fields="id", resolvable=False)])
class User:
    """Stub of the users subgraph's entity: only the key, resolved there."""


    id: strawberry.ID


@strawberry.federation.type(shareable=True)
class PageInfo:
    has_next_page: bool
    end_cursor: Optional[str]


@strawberry.type
class Category:
    id: strawberry.ID
    slug: str
    name: str
    path: str = strawberry.field(description="Slugs from the root, joined by '/'")
    _record: strawberry.Private[CategoryRecord]
    _tree: strawberry.Private[CategoryTree]

    @classmethod
    def from_record(cls, record: CategoryRecord, tree: CategoryTree) -> "Category":
        return cls(id=strawberry.ID(str(record.id)), slug=record.slug, name=record.name, path=record.path,
                   _record=record, _tree=tree)

    @strawberry.field
    def parent(self) -> Optional["Category"]:
        parent = self._tree.by_id.get(self._record.parent_id) if self._record.parent_id else None
        return Category.from_record(parent, self._tree) if parent else None

    @strawberry.field
    def children(self) -> list["Category"]:
        return [Category.from_record(c, self._tree) for c in self._tree.children.get(self._record.id, ())]

    @strawberry.field(description="Live products in this category and its descendants.")
    async def product_count(self, info: strawberry.Info) -> int:
        return await info.context.loader(ProductCountByCategoryIdLoader).load(self._record.id)


@strawberry.type
class ProductImage:
    url: str
    alt: Optional[str]


@strawberry.federation.type(keys=["id"])
class ProductVariant:
    id: strawberry.ID
    sku: str
    attributes: JSON
    price: Money
    position: int
    product: "Product"

    @classmethod
    def from_dict(cls, variant: dict[str, Any], product: "Product") -> "ProductVariant":
        return cls(id=strawberry.ID(str(variant["id"])), sku=variant["sku"], attributes=variant["attributes"],
                   price=Money(amount=variant["price"], currency=variant["currency"]),
                   position=variant["position"], product=product)

    @classmethod
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID, **_unknown: Any) -> Optional["ProductVariant"]:
        ctx: RequestContext = info.context
        variant_id = entity_key(id)
        found = await ctx.loader(VariantByIdLoader).load(variant_id) if variant_id else None
        if found is None:
            return None
        _, doc = found
        product = Product.from_doc(doc, await ctx.loader(CatalogReads).tree_covering([doc["category_id"]]))
        return next(v for v in product.variants if int(v.id) == variant_id)


@strawberry.federation.type(keys=["id"])
class Product:
    id: strawberry.ID
    slug: str
    name: str
    description: Optional[str]
    brand: Optional[str]
    category: Category
    seller: Optional[User] = strawberry.field(description="The selling user (resolved by the users subgraph)")
    variants: list[ProductVariant]
    min_price: Money = strawberry.field(description="The lowest variant price ('from' price)")
    tags: list[str]
    images: list[ProductImage]
    specifications: JSON
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_doc(cls, doc: Doc, tree: CategoryTree) -> "Product":
        product = cls(
            id=strawberry.ID(str(doc["id"])), slug=doc["slug"], name=doc["name"], description=doc["description"],
            brand=doc["brand"], category=Category.from_record(tree.by_id[doc["category_id"]], tree),
            seller=User(id=strawberry.ID(str(doc["seller_id"]))), variants=[],
            min_price=Money(amount=doc["min_price"], currency=doc["currency"]), tags=doc["tags"],
            images=[ProductImage(url=i["url"], alt=i.get("alt")) for i in doc["images"]],
            specifications=doc["specifications"], created_at=datetime.fromisoformat(doc["created_at"]),
            updated_at=datetime.fromisoformat(doc["updated_at"]))
        product.variants = [ProductVariant.from_dict(v, product) for v in doc["variants"]]
        return product

    @classmethod
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID, **_unknown: Any) -> Optional["Product"]:
        ctx: RequestContext = info.context
        product_id = entity_key(id)
        doc = await ctx.loader(ProductByIdLoader).load(product_id) if product_id else None
        if doc is None:
            return None
        return cls.from_doc(doc, await ctx.loader(CatalogReads).tree_covering([doc["category_id"]]))


async def _products_from_docs(ctx: RequestContext, docs: list[Doc]) -> list[Product]:
    tree = await ctx.loader(CatalogReads).tree_covering([d["category_id"] for d in docs])
    return [Product.from_doc(d, tree) for d in docs]


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo
    total_count: int


@strawberry.enum
class ProductSort(enum.Enum):
    NEWEST = "NEWEST"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    NAME = "NAME"


@strawberry.input
class ProductFilter:
    category_slug: Optional[str] = strawberry.field(default=None, description="Includes descendant categories")
    brand: Optional[str] = strawberry.field(default=None, description="Exact brand, case-insensitive")
    price_min: Optional[str] = strawberry.field(
        default=None, description="Decimal string; a product matches if any variant costs at least this")
    price_max: Optional[str] = strawberry.field(
        default=None, description="Decimal string; a product matches if any variant costs at most this")

    def to_service(self) -> service.ProductFilterIn:
        return service.ProductFilterIn(category_slug=self.category_slug, brand=self.brand,
                                       price_min=self.price_min, price_max=self.price_max)


@strawberry.input
class ImageInput:
    url: str
    alt: Optional[str] = None


@strawberry.input
class VariantInput:
    sku: str = strawberry.field(description="Unique across the whole catalog")
    price: str = strawberry.field(description="Decimal string > 0 with at most 2 decimals, e.g. \"19.99\"")
    currency: str = strawberry.field(default="USD", description="3 uppercase letters (ISO 4217)")
    attributes: Optional[JSON] = strawberry.field(default=None, description="e.g. {\"color\": \"red\"}")

    def to_service(self) -> service.VariantIn:
        return service.VariantIn(sku=self.sku, price=self.price, currency=self.currency, attributes=self.attributes)


@strawberry.input
class CreateProductInput:
    name: str
    category_id: strawberry.ID
    variants: list[VariantInput]
    description: Optional[str] = None
    brand: Optional[str] = None
    tags: Optional[list[str]] = None
    specifications: Optional[JSON] = strawberry.field(default=None, description="A JSON object")
    images: Optional[list[ImageInput]] = None

    def to_service(self) -> service.ProductIn:
        return service.ProductIn(
            name=self.name, category_id=parse_id(self.category_id, field="categoryId"),
            variants=[v.to_service() for v in self.variants], description=self.description, brand=self.brand,
            tags=self.tags, specifications=self.specifications,
            images=[service.ImageIn(url=i.url, alt=i.alt) for i in self.images] if self.images else None)


@strawberry.input(description="Only the fields sent are changed; null clears description, brand, tags, images, "
                              "specifications.")
class UpdateProductInput:
    name: Optional[str] = strawberry.UNSET
    description: Optional[str] = strawberry.UNSET
    brand: Optional[str] = strawberry.UNSET
    category_id: Optional[strawberry.ID] = strawberry.UNSET
    tags: Optional[list[str]] = strawberry.UNSET
    specifications: Optional[JSON] = strawberry.UNSET
    images: Optional[list[ImageInput]] = strawberry.UNSET
    variants: Optional[list[VariantInput]] = strawberry.field(
        default=strawberry.UNSET,
        description="The complete new variant list, matched by SKU: a listed SKU the product already has keeps "
                    "its variant id and takes the new price/currency/attributes/position; a new SKU becomes a "
                    "new variant; variants whose SKU is not listed are removed. At least one variant.")

    def to_service(self) -> service.ProductChanges:
        def keep(value: Any, convert: Any = lambda v: v) -> Any:
            return service.KEEP if value is strawberry.UNSET else (None if value is None else convert(value))

        if self.name is None:
            raise BadUserInput("'name' cannot be null", field="name")
        if self.variants is None:
            raise BadUserInput("'variants' cannot be null", field="variants")
        return service.ProductChanges(
            name=keep(self.name), description=keep(self.description), brand=keep(self.brand),
            category_id=keep(self.category_id, lambda v: parse_id(v, field="categoryId")),
            tags=keep(self.tags), specifications=keep(self.specifications),
            images=keep(self.images, lambda images: [service.ImageIn(url=i.url, alt=i.alt) for i in images]),
            variants=keep(self.variants, lambda variants: [v.to_service() for v in variants]))


@strawberry.input
class CreateCategoryInput:
    name: str
    slug: Optional[str] = strawberry.field(default=None, description="Derived from the name when omitted")
    parent_id: Optional[strawberry.ID] = None


@strawberry.type
class Query:
    @strawberry.field(description="Every category, ordered by path (a parent comes before its children).")
    async def categories(self, info: strawberry.Info) -> list[Category]:
        tree = await info.context.loader(CatalogReads).tree()
        return [Category.from_record(r, tree) for r in tree.records]

    @strawberry.field
    async def category(self, info: strawberry.Info, slug: str) -> Optional[Category]:
        tree = await info.context.loader(CatalogReads).tree()
        record = tree.by_slug.get(slug)
        return Category.from_record(record, tree) if record else None

    @strawberry.field(description="By id or by slug (exactly one); a deleted product is null.")
    async def product(self, info: strawberry.Info, id: Optional[strawberry.ID] = None,
                      slug: Optional[str] = None) -> Optional[Product]:
        ctx: RequestContext = info.context
        if (id is None) == (slug is None):
            raise BadUserInput("Pass exactly one of 'id' and 'slug'")
        product_id = parse_id(id) if id is not None else await service.product_id_for_slug(
            ctx.session, ctx.redis, ctx.settings, slug or "")
        doc = await ctx.loader(ProductByIdLoader).load(product_id) if product_id else None
        return (await _products_from_docs(ctx, [doc]))[0] if doc else None

    @strawberry.field(description="Live products, keyset-paginated; `after` takes an endCursor of the same sort.")
    async def products(self, info: strawberry.Info, first: Optional[int] = 20, after: Optional[str] = None,
                       filter: Optional[ProductFilter] = None,
                       sort: Optional[ProductSort] = ProductSort.NEWEST) -> ProductConnection:
        ctx: RequestContext = info.context
        first = 20 if first is None else first  # an explicit null means the default
        sort = sort or ProductSort.NEWEST
        reads = ctx.loader(CatalogReads)
        page = await service.product_page(
            ctx.session, ctx.redis, ctx.settings, generation=await reads.generation(), tree=await reads.tree(),
            filter_in=filter.to_service() if filter else None, sort=sort.value, first=first, after=after)
        docs = await ctx.loader(ProductByIdLoader).load_many(page.ids)
        # A product deleted after the page was cached is skipped rather than failing the page.
        live = [(cursor, doc) for cursor, doc in zip(page.cursors, docs) if doc is not None]
        products = await _products_from_docs(ctx, [doc for _, doc in live])
        edges = [ProductEdge(cursor=cursor, node=p) for (cursor, _), p in zip(live, products)]
        return ProductConnection(
            edges=edges, total_count=page.total_count,
            page_info=PageInfo(has_next_page=page.has_next_page,
                               end_cursor=page.cursors[-1] if page.cursors else None))


def _invalidate_after_commit(ctx: RequestContext, product_ids: list[int]) -> None:
    """Invalidation must follow the commit (cache.py explains the race), and the edge commits once, when
    the whole operation succeeded: a mutation failing later in the same document undoes this one too."""
    ctx.on_commit(lambda: cache.invalidate(ctx.redis, product_ids))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="ADMIN only.")
    async def create_category(self, info: strawberry.Info, input: CreateCategoryInput) -> Category:
        ctx: RequestContext = info.context
        caller = ctx.require_user()
        parent_id = parse_id(input.parent_id, field="parentId") if input.parent_id is not None else None
        record = await service.create_category(await ctx.session(), ctx.redis, caller=caller,
                                               category_in=service.CategoryIn(name=input.name, slug=input.slug,
                                                                              parent_id=parent_id))
        _invalidate_after_commit(ctx, [])
        return Category.from_record(record, await ctx.loader(CatalogReads).session_tree())

    @strawberry.mutation(description="SELLER or ADMIN; the caller becomes the product's seller.")
    async def create_product(self, info: strawberry.Info, input: CreateProductInput) -> Product:
        ctx: RequestContext = info.context
        caller = ctx.require_user()
        doc = await service.create_product(await ctx.session(), ctx.redis, caller=caller,
                                           product_in=input.to_service())
        _invalidate_after_commit(ctx, [doc["id"]])
        return Product.from_doc(doc, await ctx.loader(CatalogReads).session_tree())

    @strawberry.mutation(description="ADMIN, or the SELLER who owns the product.")
    async def update_product(self, info: strawberry.Info, id: strawberry.ID, input: UpdateProductInput) -> Product:
        ctx: RequestContext = info.context
        caller = ctx.require_user()
        product_id = parse_id(id)
        doc = await service.update_product(await ctx.session(), ctx.redis, caller=caller, product_id=product_id,
                                           changes=input.to_service())
        _invalidate_after_commit(ctx, [product_id])
        return Product.from_doc(doc, await ctx.loader(CatalogReads).session_tree())

    @strawberry.mutation(description="Soft delete. ADMIN, or the SELLER who owns the product.")
    async def delete_product(self, info: strawberry.Info, id: strawberry.ID) -> bool:
        ctx: RequestContext = info.context
        caller = ctx.require_user()
        product_id = parse_id(id)
        deleted = await service.delete_product(await ctx.session(), ctx.redis, caller=caller, product_id=product_id)
        _invalidate_after_commit(ctx, [product_id])
        return deleted


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The product again after every committed change (price, variants, "
                                         "details); the stream ends when the product is deleted.")
    async def product_updated(self, info: strawberry.Info, product_id: strawberry.ID) -> AsyncGenerator[Product, None]:
        ctx: RequestContext = info.context
        pid = parse_id(product_id, field="productId")
        if not (await service.product_documents(ctx.session, ctx.redis, ctx.settings, [pid]))[0]:
            raise ProductNotFound()
        await ctx.release_session()
        pubsub = ctx.redis.pubsub()
        await pubsub.subscribe(cache.product_changed_channel(pid))
        try:
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                doc = (await service.product_documents(ctx.session, ctx.redis, ctx.settings, [pid]))[0]
                tree = await service.category_tree(ctx.session, ctx.redis, ctx.settings,
                                                   generation=await cache.generation(ctx.redis))
                await ctx.release_session()  # hold no database connection while waiting for the next change
                if doc is None:
                    return
                yield Product.from_doc(doc, tree)
        finally:
            await pubsub.aclose()


# Every catalog query is public (no field depends on the caller), so any query result may be cached;
# the kernel's response cache explains why it pays off.
ResponseCache = response_cache_extension(
    generation=cache.GENERATION,
    on_generation=lambda ctx, generation: ctx.loader(CatalogReads).observe_generation(generation))
schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription,
                      types=[Product, ProductVariant, User], extensions=[ResponseCache])
