from __future__ import annotations

from collections import defaultdict

from kernel.graphql import ContextLoader
from subgraphs.orders import repository
from subgraphs.orders.models import HistoryRecord, OrderItemRecord, OrderRecord


class OrderByIdLoader(ContextLoader[int, OrderRecord | None]):
    async def batch_load(self, keys: list[int]) -> list[OrderRecord | None]:
        by_id = {o.id: o for o in await repository.orders_by_ids(await self.context.session(), keys)}
        return [by_id.get(k) for k in keys]


class ItemsByOrderIdLoader(ContextLoader[int, list[OrderItemRecord]]):
    async def batch_load(self, keys: list[int]) -> list[list[OrderItemRecord]]:
        grouped: dict[int, list[OrderItemRecord]] = defaultdict(list)
        for item in await repository.items_by_order_ids(await self.context.session(), keys):
            grouped[item.order_id].append(item)
        return [grouped[k] for k in keys]


class HistoryByOrderIdLoader(ContextLoader[int, list[HistoryRecord]]):
    async def batch_load(self, keys: list[int]) -> list[list[HistoryRecord]]:
        grouped: dict[int, list[HistoryRecord]] = defaultdict(list)
        for row in await repository.history_by_order_ids(await self.context.session(), keys):
            grouped[row.order_id].append(row)
        return [grouped[k] for k in keys]
