"""GraphQL adapter of the inventory domain: validates input, calls service.py, maps results to types.

Hot path: product pages ask the router for `variants { stock { available } }`, which reaches this subgraph
as one `_entities` fetch for all the page's variants: `resolve_reference` builds a stub without I/O and the
stock of every variant comes from ONE grouped query (StockByVariantIdLoader). Those `_entities` answers are
cached by generation (cache.py); per-warehouse detail is ADMIN-only and never cached.
"""
from __future__ import annotations

from typing import Any

import strawberry

from kernel.graphql import Info, build_schema
from kernel.ids import entity_key, parse_id
from kernel.response_cache import response_cache_extension
from subgraphs.inventory import cache, service
from subgraphs.inventory.dataloaders import StockByVariantIdLoader, StockRowsByVariantIdLoader, WarehouseByIdLoader
from subgraphs.inventory.models import WarehouseRow


@strawberry.type
class Warehouse:
    id: strawberry.ID
    code: str
    name: str

    @classmethod
    def from_row(cls, row: WarehouseRow) -> Warehouse:
        return cls(id=strawberry.ID(str(row.id)), code=row.code, name=row.name)


@strawberry.type(description="One warehouse's share of a variant's stock.")
class WarehouseStock:
    warehouse: Warehouse
    on_hand: int
    reserved: int
    available: int


@strawberry.type(description="A variant's stock summed over all warehouses. available = onHand - reserved.")
class StockLevel:
    available: int
    reserved: int
    on_hand: int
    in_stock: bool
    variant_id: strawberry.Private[int]

    @classmethod
    def from_level(cls, level: service.StockLevel) -> StockLevel:
        return cls(available=level.available, reserved=level.reserved, on_hand=level.on_hand,
                   in_stock=level.in_stock, variant_id=level.variant_id)

    @strawberry.field(description="ADMIN only: the stock per warehouse (warehouses holding a row for it).")
    async def by_warehouse(self, info: Info) -> list[WarehouseStock]:
        ctx = info.context
        ctx.mark_uncacheable()
        service.check_can_see_warehouse_stock(ctx.require_user())
        rows = await ctx.loader(StockRowsByVariantIdLoader).load(self.variant_id)
        warehouses = await ctx.loader(WarehouseByIdLoader).load_many([r.warehouse_id for r in rows])
        return [WarehouseStock(warehouse=Warehouse.from_row(w), on_hand=r.on_hand, reserved=r.reserved,
                               available=r.available)
                for r, w in zip(rows, warehouses, strict=True) if w is not None]


# Owned by catalog; inventory only contributes `stock` (no description here, so composition keeps catalog's).
@strawberry.federation.type(keys=["id"])
class ProductVariant:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, info: Info, id: strawberry.ID, **_unknown: Any) -> ProductVariant | None:
        # No I/O: every variant catalog knows has a stock answer here (zeros if inventory never heard of it).
        return cls(id=id) if entity_key(id) is not None else None

    @strawberry.field
    async def stock(self, info: Info) -> StockLevel:
        level = await info.context.loader(StockByVariantIdLoader).load(int(self.id))
        return StockLevel.from_level(level)


@strawberry.type
class Query:
    @strawberry.field(description=(
        "A variant by id as inventory knows it (null if it does not): `variant(id) { stock { available } }` is "
        "answered by inventory alone, without a catalog fetch; other ProductVariant fields come from catalog."))
    async def variant(self, info: Info, id: strawberry.ID) -> ProductVariant | None:
        variant_id = parse_id(id)
        if not await service.is_known_variant(await info.context.session(), variant_id):
            return None
        return ProductVariant(id=strawberry.ID(str(variant_id)))

    @strawberry.field(description="ADMIN only.")
    async def warehouses(self, info: Info) -> list[Warehouse]:
        ctx = info.context
        rows = await service.warehouses(await ctx.session(), ctx.require_user())
        return [Warehouse.from_row(r) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(description=(
        "ADMIN only. Adds (delta > 0) or removes (delta < 0) units of a variant in one warehouse and records "
        "why. |delta| is at most 1,000,000; reason is 1-500 characters. CONFLICT when on hand would drop "
        "below the units reserved for orders there. Returns the variant's totals over all warehouses."))
    async def adjust_stock(self, info: Info, variant_id: strawberry.ID, warehouse_id: strawberry.ID,
                           delta: int, reason: str) -> StockLevel:
        ctx = info.context
        caller = ctx.require_user()
        level = await service.adjust_stock(
            await ctx.session(), caller, parse_id(variant_id, field="variantId"),
            parse_id(warehouse_id, field="warehouseId"), delta, reason, redis=ctx.redis,
            http=ctx.resources.peers, catalog_url=ctx.settings.catalog_service_url)
        return StockLevel.from_level(level)

    @strawberry.mutation(description="ADMIN only. `code` (e.g. WH-EAST) is unique and stored upper-case.")
    async def create_warehouse(self, info: Info, code: str, name: str) -> Warehouse:
        ctx = info.context
        caller = ctx.require_user()
        return Warehouse.from_row(await service.create_warehouse(await ctx.session(), caller, code, name))


# Stock is public (per-warehouse detail marks a response uncacheable), so both ways in are cached.
ResponseCache = response_cache_extension(generation=cache.GENERATION, root_fields=frozenset({"_entities", "variant"}))
schema = build_schema(query=Query, mutation=Mutation, types=[ProductVariant], extensions=[ResponseCache])
