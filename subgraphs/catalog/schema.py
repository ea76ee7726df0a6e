"""GraphQL adapter of the catalog domain: validates input, calls service.py, maps documents to types.

Hot path note: product documents already hold their variants, so Product.variants, ProductVariant.price
and Product.category are plain attributes filled in `from_doc`; per-field async resolvers are what
makes Strawberry slow, and the browse query resolves hundreds of fields per page.
"""
from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.scalars import JSON

from kernel.errors import BadUserInput
from kernel.graphql import Info, Money, PageInfo, build_schema
from kernel.ids import entity_key, parse_id
from kernel.response_cache import response_cache_extension
from subgraphs.catalog import cache, service
from subgraphs.catalog.dataloaders import (
    CatalogReads,
    ProductByIdLoader,
    ProductCountByCategoryIdLoader,
    VariantByIdLoader,
)
from subgraphs.catalog.service import CategoryRecord, CategoryTree, Doc


@strawberry.federation.type(directives=[Key(fields=FieldSet("id"), resolvable=False)])
class User:
    """Stub of the users subgraph's entity: only the key, resolved there."""

    id: strawberry.ID


@strawberry.type
class Category:
    id: strawberry.ID
    slug: str
    name: str
    path: str = strawberry.field(description="Slugs from the root, joined by '/'")
    _record: strawberry.Private[CategoryRecord]
    _tree: strawberry.Private[CategoryTree]

    @classmethod
    def from_record(cls, record: CategoryRecord, tree: CategoryTree) -> Category:
        return cls(id=strawberry.ID(str(record.id)), slug=record.slug, name=record.name, path=record.path,
                   _record=record, _tree=tree)

    @strawberry.field
    def parent(self) -> Category | None:
        parent = self._tree.by_id.get(self._record.parent_id) if self._record.parent_id else None
        return Category.from_record(parent, self._tree) if parent else None

    @strawberry.field
    def children(self) -> list[Category]:
        return [Category.from_record(c, self._tree) for c in self._tree.children.get(self._record.id, ())]

    @strawberry.field(description="Live products in this category and its descendants.")
    async def product_count(self, info: Info) -> int:
        return await info.context.loader(ProductCountByCategoryIdLoader).load(self._record.id)


@strawberry.type
class ProductImage:
    url: str
    alt: str | None


@strawberry.federation.type(keys=["id"])
class ProductVariant:
    id: strawberry.ID
    sku: str
    attributes: JSON
    price: Money
    position: int
    product: Product
    weight_grams: int = strawberry.field(default=500, description="Shipping weight in grams (priced by shipping)")

    @classmethod
    def from_dict(cls, variant: dict[str, Any], product: Product) -> ProductVariant:
        return cls(id=strawberry.ID(str(variant["id"])), sku=variant["sku"], attributes=variant["attributes"],
                   price=Money(amount=variant["price"], currency=variant["currency"]),
                   position=variant["position"], product=product,
                   weight_grams=variant.get("weight_grams", service.DEFAULT_WEIGHT_GRAMS))

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID, **_unknown: Any) -> ProductVariant | None:
        ctx = info.context
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
    # Shareable: search answers these from its index for its own results (subgraphs/search/schema.py).
    slug: str = strawberry.federation.field(shareable=True)
    name: str = strawberry.federation.field(shareable=True)
    description: str | None
    brand: str | None = strawberry.federation.field(shareable=True)
    category: Category
    seller: User | None = strawberry.field(description="The selling user (resolved by the users subgraph)")
    variants: list[ProductVariant]
    min_price: Money = strawberry.federation.field(shareable=True,
                                                   description="The lowest variant price ('from' price)")
    tags: list[str]
    images: list[ProductImage]
    specifications: JSON
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_doc(cls, doc: Doc, tree: CategoryTree) -> Product:
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
    async def resolve_reference(cls, info: Info, id: strawberry.ID, **_unknown: Any) -> Product | None:
        ctx = info.context
        product_id = entity_key(id)
        doc = await ctx.loader(ProductByIdLoader).load(product_id) if product_id else None
        if doc is None:
            return None
        return cls.from_doc(doc, await ctx.loader(CatalogReads).tree_covering([doc["category_id"]]))


async def _products_from_docs(info: Info, docs: list[Doc]) -> list[Product]:
    tree = await info.context.loader(CatalogReads).tree_covering([d["category_id"] for d in docs])
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
    category_slug: str | None = strawberry.field(default=None, description="Includes descendant categories")
    brand: str | None = strawberry.field(default=None, description="Exact brand, case-insensitive")
    price_min: str | None = strawberry.field(
        default=None, description="Decimal string; a product matches if any variant costs at least this")
    price_max: str | None = strawberry.field(
        default=None, description="Decimal string; a product matches if any variant costs at most this")

    def to_service(self) -> service.ProductFilterIn:
        return service.ProductFilterIn(category_slug=self.category_slug, brand=self.brand,
                                       price_min=self.price_min, price_max=self.price_max)


@strawberry.input
class ImageInput:
    url: str
    alt: str | None = None


@strawberry.input
class VariantInput:
    sku: str = strawberry.field(description="Unique across the whole catalog")
    price: str = strawberry.field(description="Decimal string > 0 with at most 2 decimals, e.g. \"19.99\"")
    currency: str = strawberry.field(default="USD", description="3 uppercase letters (ISO 4217)")
    attributes: JSON | None = strawberry.field(default=None, description="e.g. {\"color\": \"red\"}")
    weight_grams: int | None = strawberry.field(
        default=None, description="Shipping weight in grams, 0..1000000; default 500 (a kept SKU keeps its weight)")

    def to_service(self) -> service.VariantIn:
        return service.VariantIn(sku=self.sku, price=self.price, currency=self.currency, attributes=self.attributes,
                                 weight_grams=self.weight_grams)


@strawberry.input
class CreateProductInput:
    name: str
    category_id: strawberry.ID
    variants: list[VariantInput]
    description: str | None = None
    brand: str | None = None
    tags: list[str] | None = None
    specifications: JSON | None = strawberry.field(default=None, description="A JSON object")
    images: list[ImageInput] | None = None

    def to_service(self) -> service.ProductIn:
        return service.ProductIn(
            name=self.name, category_id=parse_id(self.category_id, field="categoryId"),
            variants=[v.to_service() for v in self.variants], description=self.description, brand=self.brand,
            tags=self.tags, specifications=self.specifications,
            images=[service.ImageIn(url=i.url, alt=i.alt) for i in self.images] if self.images else None)


@strawberry.input(description="Only the fields sent are changed; null clears description, brand, tags, images, "
                              "specifications.")
class UpdateProductInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    brand: str | None = strawberry.UNSET
    category_id: strawberry.ID | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    specifications: JSON | None = strawberry.UNSET
    images: list[ImageInput] | None = strawberry.UNSET
    variants: list[VariantInput] | None = strawberry.field(
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
    slug: str | None = strawberry.field(default=None, description="Derived from the name when omitted")
    parent_id: strawberry.ID | None = None


@strawberry.type
class Query:
    @strawberry.field(description="Every category, ordered by path (a parent comes before its children).")
    async def categories(self, info: Info) -> list[Category]:
        tree = await info.context.loader(CatalogReads).tree()
        return [Category.from_record(r, tree) for r in tree.records]

    @strawberry.field
    async def category(self, info: Info, slug: str) -> Category | None:
        tree = await info.context.loader(CatalogReads).tree()
        record = tree.by_slug.get(slug)
        return Category.from_record(record, tree) if record else None

    @strawberry.field(description="By id or by slug (exactly one); a deleted product is null.")
    async def product(self, info: Info, id: strawberry.ID | None = None,
                      slug: str | None = None) -> Product | None:
        ctx = info.context
        if (id is None) == (slug is None):
            raise BadUserInput("Pass exactly one of 'id' and 'slug'")
        product_id = parse_id(id) if id is not None else await service.product_id_for_slug(
            ctx.session, ctx.redis, ctx.settings, slug or "")
        doc = await ctx.loader(ProductByIdLoader).load(product_id) if product_id else None
        return (await _products_from_docs(info, [doc]))[0] if doc else None

    @strawberry.field(description="Live products, keyset-paginated; `after` takes an endCursor of the same sort.")
    async def products(self, info: Info, first: int | None = 20, after: str | None = None,
                       filter: ProductFilter | None = None,
                       sort: ProductSort | None = ProductSort.NEWEST) -> ProductConnection:
        ctx = info.context
        first = 20 if first is None else first  # an explicit null means the default
        sort = sort or ProductSort.NEWEST
        reads = ctx.loader(CatalogReads)
        page = await service.product_page(
            ctx.session, ctx.redis, ctx.settings, generation=await reads.generation(), tree=await reads.tree(),
            filter_in=filter.to_service() if filter else None, sort=sort.value, first=first, after=after)
        docs = await ctx.loader(ProductByIdLoader).load_many(page.ids)
        # A product deleted after the page was cached is skipped rather than failing the page.
        live = [(cursor, doc) for cursor, doc in zip(page.cursors, docs, strict=True) if doc is not None]
        products = await _products_from_docs(info, [doc for _, doc in live])
        edges = [ProductEdge(cursor=cursor, node=p) for (cursor, _), p in zip(live, products, strict=True)]
        return ProductConnection(
            edges=edges, total_count=page.total_count,
            page_info=PageInfo(has_next_page=page.has_next_page,
                               end_cursor=page.cursors[-1] if page.cursors else None))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="ADMIN only.")
    async def create_category(self, info: Info, input: CreateCategoryInput) -> Category:
        ctx = info.context
        caller = ctx.require_user()
        parent_id = parse_id(input.parent_id, field="parentId") if input.parent_id is not None else None
        record = await service.create_category(await ctx.session(), ctx.redis, caller=caller,
                                               category_in=service.CategoryIn(name=input.name, slug=input.slug,
                                                                              parent_id=parent_id))
        return Category.from_record(record, await ctx.loader(CatalogReads).session_tree())

    @strawberry.mutation(description="SELLER or ADMIN; the caller becomes the product's seller.")
    async def create_product(self, info: Info, input: CreateProductInput) -> Product:
        ctx = info.context
        caller = ctx.require_user()
        doc = await service.create_product(await ctx.session(), ctx.redis, caller=caller,
                                           product_in=input.to_service())
        return Product.from_doc(doc, await ctx.loader(CatalogReads).session_tree())

    @strawberry.mutation(description="ADMIN, or the SELLER who owns the product.")
    async def update_product(self, info: Info, id: strawberry.ID, input: UpdateProductInput) -> Product:
        ctx = info.context
        caller = ctx.require_user()
        doc = await service.update_product(await ctx.session(), ctx.redis, caller=caller, product_id=parse_id(id),
                                           changes=input.to_service())
        return Product.from_doc(doc, await ctx.loader(CatalogReads).session_tree())

    @strawberry.mutation(description="Soft delete. ADMIN, or the SELLER who owns the product.")
    async def delete_product(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        caller = ctx.require_user()
        return await service.delete_product(await ctx.session(), ctx.redis, caller=caller, product_id=parse_id(id))


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The product again after every committed change (price, variants, "
                                         "details); the stream ends when the product is deleted.")
    async def product_updated(self, info: Info, product_id: strawberry.ID) -> AsyncGenerator[Product, None]:
        ctx = info.context
        changes = service.product_change_stream(ctx.resources.session_factory, ctx.redis, ctx.settings,
                                                parse_id(product_id, field="productId"))
        async with contextlib.aclosing(changes):  # a client leaving ends the service's stream at once
            async for doc, tree in changes:
                yield Product.from_doc(doc, tree)


# Every catalog query is public (no field depends on the caller), so any query result may be cached;
# the kernel's response cache explains why it pays off.
ResponseCache = response_cache_extension(
    generation=cache.GENERATION,
    on_generation=lambda ctx, generation: ctx.loader(CatalogReads).observe_generation(generation))
schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription,
                      types=[Product, ProductVariant, User], extensions=[ResponseCache])
