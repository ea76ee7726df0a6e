from __future__ import annotations

from kernel.graphql import ContextLoader
from subgraphs.payments import service
from subgraphs.payments.models import PaymentRow, RefundRow


class PaymentByOrderIdLoader(ContextLoader[int, PaymentRow | None]):
    """Order id -> its payment (None: no payment attempted); one SQL query per batch of orders."""

    async def batch_load(self, keys: list[int]) -> list[PaymentRow | None]:
        found = await service.payments_by_order_ids(await self.context.session(), keys)
        return [found.get(k) for k in keys]


class RefundsByPaymentIdLoader(ContextLoader[int, list[RefundRow]]):
    """Payment id -> its refunds, oldest first; one SQL query per batch of payments."""

    async def batch_load(self, keys: list[int]) -> list[list[RefundRow]]:
        found = await service.refunds_by_payment_ids(await self.context.session(), keys)
        return [found[k] for k in keys]
