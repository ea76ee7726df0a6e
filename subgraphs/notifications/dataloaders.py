"""Per-request loaders (built fresh per request through `RequestContext.loader`): a page of twenty notifications
asks for its deliveries in one query, not twenty."""
from __future__ import annotations

from kernel.graphql import ContextLoader
from subgraphs.notifications import service


class DeliveryStatusLoader(ContextLoader[int, dict[str, str]]):
    """Notification id -> {channel: status} of its ledger rows."""

    async def batch_load(self, keys: list[int]) -> list[dict[str, str]]:
        found = await service.delivery_statuses(await self.context.session(), keys)
        return [found.get(k, {}) for k in keys]
