"""Per-request loaders (built fresh per request through `RequestContext.loader`)."""
from __future__ import annotations

from collections import defaultdict

from kernel.graphql import ContextLoader
from subgraphs.inventory import repository, service
from subgraphs.inventory.models import WarehouseRow
from subgraphs.inventory.repository import StockRow


class StockByVariantIdLoader(ContextLoader[int, service.StockLevel]):
    """Totals over warehouses for a whole page of variants in ONE grouped query; unknown variants get zeros."""

    async def batch_load(self, keys: list[int]) -> list[service.StockLevel]:
        return await service.stock_levels(await self.context.session(), keys)


class StockRowsByVariantIdLoader(ContextLoader[int, list[StockRow]]):
    async def batch_load(self, keys: list[int]) -> list[list[StockRow]]:
        grouped: dict[int, list[StockRow]] = defaultdict(list)
        for row in await repository.stock_rows(await self.context.session(), keys):
            grouped[row.variant_id].append(row)
        return [grouped[k] for k in keys]


class WarehouseByIdLoader(ContextLoader[int, WarehouseRow | None]):
    async def batch_load(self, keys: list[int]) -> list[WarehouseRow | None]:
        by_id = {w.id: w for w in await repository.warehouses_by_ids(await self.context.session(), keys)}
        return [by_id.get(k) for k in keys]
