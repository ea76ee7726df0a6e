"""GraphQL adapter of the payments domain.

Its public surface is the `payment` field it contributes to the orders subgraph's `Order` entity (reached
through `_entities` after the orders subgraph has decided who may see the order), the list of accepted
providers for checkout forms, `confirmPayment` (the shopper's client completed the provider's step, e.g.
3-D Secure) and the ADMIN's `refundPayment`. Charging itself happens on saga events (consumers.py).
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import strawberry

from kernel.graphql import Info, Money, RequestContext, build_schema
from kernel.ids import entity_key, parse_id
from subgraphs.payments import models, service
from subgraphs.payments.dataloaders import PaymentByOrderIdLoader, RefundsByPaymentIdLoader
from subgraphs.payments.models import PaymentRow, RefundRow
from subgraphs.payments.providers import PaymentProvider, accepted_providers, shared_providers


def request_providers(ctx: RequestContext) -> Mapping[str, PaymentProvider]:
    return shared_providers(ctx.resources.extras, ctx.settings, ctx.redis)


@strawberry.enum
class PaymentStatus(enum.Enum):
    PENDING = models.PaymentStatus.PENDING.value
    PROCESSING = models.PaymentStatus.PROCESSING.value
    REQUIRES_ACTION = models.PaymentStatus.REQUIRES_ACTION.value
    SUCCEEDED = models.PaymentStatus.SUCCEEDED.value
    FAILED = models.PaymentStatus.FAILED.value
    CANCELLED = models.PaymentStatus.CANCELLED.value
    PARTIALLY_REFUNDED = models.PaymentStatus.PARTIALLY_REFUNDED.value
    REFUNDED = models.PaymentStatus.REFUNDED.value


@strawberry.enum
class RefundStatus(enum.Enum):
    PENDING = models.RefundStatus.PENDING.value
    SUCCEEDED = models.RefundStatus.SUCCEEDED.value
    FAILED = models.RefundStatus.FAILED.value


@strawberry.type(description="What the shopper's client must do before the provider decides (e.g. 3-D Secure: "
                             "Stripe.js `handleNextAction` with the client secret, or a redirect).")
class PaymentNextAction:
    type: str
    client_secret: str | None
    redirect_url: str | None


@strawberry.type(description="One refund of a payment.")
class Refund:
    id: strawberry.ID
    amount: Money
    status: RefundStatus
    reason: str | None
    failure_reason: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: RefundRow) -> Refund:
        return cls(id=strawberry.ID(str(row.id)), amount=Money.of(row.amount, row.currency.strip()),
                   status=RefundStatus(row.status), reason=row.reason, failure_reason=row.failure_reason,
                   created_at=row.created_at)


@strawberry.type(description="The payment of one order.")
class Payment:
    id: strawberry.ID
    status: PaymentStatus
    amount: Money
    provider: str
    failure_reason: str | None = strawberry.field(
        description="The provider's decline code (e.g. card_declined) when status is FAILED")
    created_at: datetime
    next_action: PaymentNextAction | None = strawberry.field(
        description="Set while status is REQUIRES_ACTION; then confirmPayment once the shopper completed it")
    captured_amount: Money | None = strawberry.field(description="What the provider captured; null until then")
    refunded_amount: Money | None = strawberry.field(description="The sum of succeeded refunds; null until captured")

    @classmethod
    def from_row(cls, row: PaymentRow) -> Payment:
        assert row.amount is not None and row.currency is not None and row.provider is not None  # not a tombstone
        currency = row.currency.strip()
        action = (PaymentNextAction(type=row.next_action_type, client_secret=row.client_secret,
                                    redirect_url=row.redirect_url)
                  if row.next_action_type is not None else None)
        captured = row.captured_amount
        return cls(id=strawberry.ID(str(row.id)), status=PaymentStatus(row.status),
                   amount=Money.of(row.amount, currency), provider=row.provider, failure_reason=row.failure_reason,
                   created_at=row.created_at, next_action=action,
                   captured_amount=Money.of(captured, currency) if captured is not None else None,
                   refunded_amount=Money.of(row.refunded_amount, currency) if captured is not None else None)

    @strawberry.field(description="Refunds of this payment, oldest first")
    async def refunds(self, info: Info) -> list[Refund]:
        rows = await info.context.loader(RefundsByPaymentIdLoader).load(int(self.id))
        return [Refund.from_row(r) for r in rows]


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


@strawberry.type
class Mutation:
    @strawberry.mutation(description="The shopper completed the provider's step (Payment.nextAction): ask the "
                                     "provider now instead of waiting for its webhook. The order's owner or an "
                                     "ADMIN; NOT_FOUND when the order has no payment.")
    async def confirm_payment(self, info: Info, order_id: strawberry.ID) -> Order:
        ctx = info.context
        caller = ctx.require_user()
        ctx.mark_uncacheable()
        order = parse_id(order_id, field="orderId")
        payment = await service.confirm_payment(await ctx.session(), request_providers(ctx),
                                                ctx.resources.session_factory, caller=caller, order_id=order)
        ctx.loader(PaymentByOrderIdLoader).prime(order, payment)
        return Order(id=strawberry.ID(str(order)))

    @strawberry.mutation(description="ADMIN: refund `amount` (null: all that is left) of a captured payment. "
                                     "Refunds never add up to more than was captured (BAD_USER_INPUT).")
    async def refund_payment(self, info: Info, payment_id: strawberry.ID, amount: str | None = None,
                             reason: str | None = None) -> Refund:
        ctx = info.context
        caller = ctx.require_user()
        ctx.mark_uncacheable()
        refund = await service.refund_payment(
            ctx.resources.session_factory, request_providers(ctx), caller=caller,
            refund_in=service.RefundIn(payment_id=parse_id(payment_id, field="paymentId"), amount=amount,
                                       reason=reason))
        return Refund.from_row(refund)


schema = build_schema(query=Query, mutation=Mutation, types=[Order])
