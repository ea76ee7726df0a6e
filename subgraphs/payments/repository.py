"""SQL for the payments domain."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of
from subgraphs.payments.models import (
    OPEN_STATUSES,
    SCHEMA,
    ChargeIntentRow,
    PaymentRow,
    ProviderCallRow,
    RefundRow,
    RefundStatus,
)


async def insert_payment_if_absent(session: AsyncSession, row: dict[str, Any]) -> PaymentRow | None:
    """The row, or None if the order already has one. One statement, so an order.confirmed and an
    order.cancelled racing on two workers leave exactly one row (the loser waits on the unique index
    until the winner commits, then sees the conflict)."""
    stmt = (insert(PaymentRow).values(**row).on_conflict_do_nothing(index_elements=["order_id"])
            .returning(PaymentRow))
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_payment_by_order_for_update(session: AsyncSession, order_id: int) -> PaymentRow | None:
    stmt = (select(PaymentRow).where(PaymentRow.order_id == order_id).with_for_update()
            .execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_payment_for_update(session: AsyncSession, payment_id: int) -> PaymentRow | None:
    stmt = (select(PaymentRow).where(PaymentRow.id == payment_id).with_for_update()
            .execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_payment_by_reference_for_update(session: AsyncSession, reference: str) -> PaymentRow | None:
    stmt = (select(PaymentRow).where(PaymentRow.provider_reference == reference).limit(1).with_for_update()
            .execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_payment(session: AsyncSession, payment_id: int) -> PaymentRow | None:
    return (await session.execute(select(PaymentRow).where(PaymentRow.id == payment_id))).scalar_one_or_none()


async def get_payment_by_order(session: AsyncSession, order_id: int) -> PaymentRow | None:
    stmt = select(PaymentRow).where(PaymentRow.order_id == order_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def payments_by_order_ids(session: AsyncSession, order_ids: Sequence[int]) -> list[PaymentRow]:
    return list((await session.execute(select(PaymentRow).where(any_of(PaymentRow.order_id, order_ids)))).scalars())


async def update_payment(session: AsyncSession, payment_id: int, values: dict[str, Any]) -> PaymentRow:
    stmt = (update(PaymentRow).where(PaymentRow.id == payment_id).values(**values, updated_at=func.now())
            .returning(PaymentRow).execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one()


async def lock_open_payment_to_reconcile(session: AsyncSession, *, idle_for: timedelta) -> PaymentRow | None:
    """The open payment (charge pending, processing, waiting for the shopper) untouched the longest, if it has
    been idle for `idle_for`. SKIP LOCKED: a payment being charged right now (its charger holds the lock), or
    reconciled by another worker, is not this one's business."""
    stmt = (select(PaymentRow)
            .where(any_of(PaymentRow.status, [s.value for s in OPEN_STATUSES]),
                   PaymentRow.updated_at < func.now() - idle_for)
            .order_by(PaymentRow.updated_at).limit(1).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def record_provider_call(session: AsyncSession, row: dict[str, Any]) -> None:
    """Upsert by idempotency key: a retried call got the provider's first answer again, one row stays."""
    stmt = insert(ProviderCallRow).values(**row)
    stmt = stmt.on_conflict_do_update(index_elements=["idempotency_key"], set_={
        "outcome": stmt.excluded.outcome, "provider_reference": stmt.excluded.provider_reference,
        "failure_reason": stmt.excluded.failure_reason})
    await session.execute(stmt)


# ---- charge intents -----------------------------------------------------------------------------------------

async def record_charge_intent(session: AsyncSession, payment_id: int, reference: str) -> None:
    """The first intent a charge created is the one it goes on with (a later attempt finds it here)."""
    stmt = insert(ChargeIntentRow).values(payment_id=payment_id, reference=reference)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["payment_id"]))


async def charge_intent(session: AsyncSession, payment_id: int) -> str | None:
    stmt = select(ChargeIntentRow.reference).where(ChargeIntentRow.payment_id == payment_id)
    return (await session.execute(stmt)).scalar_one_or_none()


# ---- refunds ------------------------------------------------------------------------------------------------

async def insert_refund(session: AsyncSession, row: dict[str, Any]) -> RefundRow:
    return (await session.execute(insert(RefundRow).values(**row).returning(RefundRow))).scalar_one()


async def update_refund(session: AsyncSession, refund_id: int, values: dict[str, Any]) -> RefundRow:
    stmt = (update(RefundRow).where(RefundRow.id == refund_id).values(**values, updated_at=func.now())
            .returning(RefundRow).execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one()


async def pending_refund_total(session: AsyncSession, payment_id: int) -> Decimal:
    stmt = select(func.coalesce(func.sum(RefundRow.amount), 0)).where(
        RefundRow.payment_id == payment_id, RefundRow.status == RefundStatus.PENDING.value)
    return Decimal((await session.execute(stmt)).scalar_one())


async def pending_refunds_of(session: AsyncSession, payment_id: int) -> list[RefundRow]:
    """The payment's pending refunds nobody is asking the provider about right now (SKIP LOCKED: one in flight
    in a refundPayment request is settled by that request)."""
    stmt = (select(RefundRow).where(RefundRow.payment_id == payment_id,
                                    RefundRow.status == RefundStatus.PENDING.value)
            .order_by(RefundRow.id).with_for_update(skip_locked=True).execution_options(populate_existing=True))
    return list((await session.execute(stmt)).scalars())


async def get_refund_for_update(session: AsyncSession, refund_id: int) -> RefundRow | None:
    stmt = (select(RefundRow).where(RefundRow.id == refund_id).with_for_update()
            .execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_pending_refund_to_reconcile(session: AsyncSession, *, idle_for: timedelta) -> RefundRow | None:
    stmt = (select(RefundRow)
            .where(RefundRow.status == RefundStatus.PENDING.value, RefundRow.updated_at < func.now() - idle_for)
            .order_by(RefundRow.updated_at).limit(1).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def refunds_by_payment_ids(session: AsyncSession, payment_ids: Sequence[int]) -> list[RefundRow]:
    stmt = select(RefundRow).where(any_of(RefundRow.payment_id, payment_ids)).order_by(RefundRow.id)
    return list((await session.execute(stmt)).scalars())


# ---- provider notifications -------------------------------------------------------------------------------

# Provider event ids (Stripe's `evt_...`) become UUIDs for the kernel's inbox table, whose event_id is a uuid.
_NOTIFICATION_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-4c1e-9b7a-2f5e0d9c1a37")


async def record_notification(session: AsyncSession, consumer: str, provider_event_id: str) -> bool:
    """True the first time this provider event arrives, False for a redelivery: the same inbox (and the same
    transaction as the event's effect) that deduplicates the Kafka consumers."""
    # text(): the inbox is the kernel's table (kernel/migrations), present in every domain schema but not one of
    # this domain's models; the statement is the kernel consumer's own.
    inserted = await session.execute(
        text(f"INSERT INTO {SCHEMA}.inbox (consumer, event_id) VALUES (:c, :e) ON CONFLICT DO NOTHING "
             f"RETURNING event_id"),
        {"c": consumer, "e": uuid.uuid5(_NOTIFICATION_NAMESPACE, provider_event_id)})
    return inserted.first() is not None
