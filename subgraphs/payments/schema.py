"""GraphQL adapter of the payments domain.

Payments has no mutations: it acts on saga events (consumers.py). Its public surface is the `payment` field
it contributes to the orders subgraph's `Order` entity, reached through `_entities` after the orders
subgraph has decided who may see the order, plus the list of accepted providers for checkout forms.
"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry

from kernel.graphql import Info, Money, build_schema
from kernel.ids import entity_key
from subgraphs.payments import models
from subgraphs.payments.dataloaders import PaymentByOrderIdLoader
from subgraphs.payments.models import PaymentRow
from subgraphs.payments.providers import accepted_providers


@strawberry.enum
class PaymentStatus(enum.Enum):
    PENDING = models.PaymentStatus.PENDING.value
    PROCESSING = models.PaymentStatus.PROCESSING.value
    SUCCEEDED = models.PaymentStatus.SUCCEEDED.value
    FAILED = models.PaymentStatus.FAILED.value
    CANCELLED = models.PaymentStatus.CANCELLED.value
    REFUNDED = models.PaymentStatus.REFUNDED.value


@strawberry.type(description="The payment of one order.")
class Payment:
    id: strawberry.ID
    status: PaymentStatus
    amount: Money
    provider: str
    failure_reason: str | None = strawberry.field(
        description="The provider's decline code (e.g. card_declined) when status is FAILED")
    created_at: datetime

    @classmethod
    def from_row(cls, row: PaymentRow) -> Payment:
        assert row.amount is not None and row.currency is not None and row.provider is not None  # not a tombstone
        return cls(id=strawberry.ID(str(row.id)), status=PaymentStatus(row.status),
                   amount=Money.of(row.amount, row.currency.strip()),
                   provider=row.provider, failure_reason=row.failure_reason, created_at=row.created_at)


@strawberry.federation.type(keys=["id"])
class Order:
    """The orders subgraph's entity; payments contributes `payment`. No description in the SDL, so the
    owner's description is the one composition keeps."""

    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, **_unknown: Any) -> Order:
        # Nothing to look up: the orders subgraph owns the order and has already authorized the caller;
        # `payment` is loaded (batched) only when the query asks for it.
        return cls(id=id)

    @strawberry.field(description="The order's payment; null until payments has been asked to charge it.")
    async def payment(self, info: Info) -> Payment | None:
        ctx = info.context
        order_id = entity_key(self.id)
        row = await ctx.loader(PaymentByOrderIdLoader).load(order_id) if order_id is not None else None
        return Payment.from_row(row) if row is not None else None


@strawberry.type
class Query:
    @strawberry.field(description="Payment providers checkout accepts (PaymentMethodInput.provider).")
    def payment_providers(self, info: Info) -> list[str]:
        return sorted(accepted_providers(info.context.settings))


schema = build_schema(query=Query, types=[Order])
