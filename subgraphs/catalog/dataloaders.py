"""Per-request loaders. Product documents come from Redis (one MGET per batch) with one SQL query for misses."""
from __future__ import annotations

from typing import Any

from kernel.graphql import ContextLoader, RequestContext
from subgraphs.catalog import cache, repository, service
from subgraphs.catalog.service import CategoryRecord, CategoryTree, Doc


class CatalogReads:
    """Per-request read state, kept in the context's loader registry (it is not a DataLoader):
    the catalog generation this request reads at, and the category tree of that generation."""

    def __init__(self, context: RequestContext) -> None:
        self.context = context
        self._generation: int | None = None
        self._tree: CategoryTree | None = None

    async def generation(self) -> int:
        if self._generation is None:
            self._generation = await cache.generation(self.context.redis)
        return self._generation

    def observe_generation(self, generation: int | None) -> None:
        """Adopt a generation read elsewhere in this request (saves a round trip)."""
        if self._generation is None and generation is not None:
            self._generation = generation

    async def tree(self) -> CategoryTree:
        if self._tree is None:
            ctx = self.context
            self._tree = await service.category_tree(ctx.session, ctx.redis, ctx.settings,
                                                     generation=await self.generation())
        return self._tree

    async def tree_covering(self, category_ids: list[int]) -> CategoryTree:
        """The tree, re-read from Postgres in the (narrow) race where a product names a category that the
        cached tree of this generation does not have yet."""
        tree = await self.tree()
        if all(c in tree.by_id for c in category_ids):
            return tree
        return await self.session_tree()

    async def session_tree(self) -> CategoryTree:
        """The tree as this request's own transaction sees it, its uncommitted writes included (mutation
        answers). Kept for this request only, never in a shared cache: the transaction may still roll back."""
        rows = await repository.all_categories(await self.context.session())
        self._tree = CategoryTree([CategoryRecord(id=r.id, parent_id=r.parent_id, slug=r.slug, name=r.name,
                                                  path=r.path) for r in rows])
        return self._tree


class ProductByIdLoader(ContextLoader[int, Doc | None]):
    async def batch_load(self, keys: list[int]) -> list[Doc | None]:
        ctx = self.context
        return await service.product_documents(ctx.session, ctx.redis, ctx.settings, keys)


class VariantByIdLoader(ContextLoader[int, tuple[dict[str, Any], Doc] | None]):
    """Variant id -> (variant, its product's document); None if unknown, removed, or its product deleted."""

    async def batch_load(self, keys: list[int]) -> list[tuple[dict[str, Any], Doc] | None]:
        ctx = self.context
        product_ids = await service.product_ids_for_variants(ctx.session, ctx.redis, ctx.settings, keys)
        wanted = sorted({p for p in product_ids if p is not None})
        docs = dict(zip(wanted, await ctx.loader(ProductByIdLoader).load_many(wanted), strict=True))
        out: list[tuple[dict[str, Any], Doc] | None] = []
        for variant_id, product_id in zip(keys, product_ids, strict=True):
            doc = docs.get(product_id) if product_id is not None else None
            variant = next((v for v in doc["variants"] if v["id"] == variant_id), None) if doc else None
            out.append((variant, doc) if variant is not None and doc is not None else None)
        return out


class ProductCountByCategoryIdLoader(ContextLoader[int, int]):
    """Live products in a category and all its descendants."""

    async def batch_load(self, keys: list[int]) -> list[int]:
        tree = await self.context.loader(CatalogReads).tree()
        counts = await service.product_counts(self.context.session)
        return [sum(counts.get(c, 0) for c in tree.subtree_ids(k)) for k in keys]
