"""Per-request loaders (built fresh per request through `RequestContext.loader`): `Order.shipments` of a page of
orders reaches this subgraph as one `_entities` fetch, and this answers all of them with one query per table."""
from __future__ import annotations

from kernel.errors import AppError
from kernel.graphql import ContextLoader
from subgraphs.shipping import service
from subgraphs.shipping.models import ShipmentRecord


class ShipmentsByOrderIdLoader(ContextLoader[int, list[ShipmentRecord]]):
    """Every asked order's shipments (FORBIDDEN, per order, when the caller may not see them)."""

    async def batch_load(self, keys: list[int]) -> list[list[ShipmentRecord] | AppError]:
        ctx = self.context
        return await service.shipments_for_orders(await ctx.session(), ctx.require_user(), keys)
