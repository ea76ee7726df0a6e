"""SQL for the payments domain."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.payments.models import PaymentRow, ProviderCallRow


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


async def payments_by_order_ids(session: AsyncSession, order_ids: Sequence[int]) -> list[PaymentRow]:
    return list((await session.execute(select(PaymentRow).where(PaymentRow.order_id.in_(order_ids)))).scalars())


async def update_payment(session: AsyncSession, payment_id: int, values: dict[str, Any]) -> PaymentRow:
    stmt = (update(PaymentRow).where(PaymentRow.id == payment_id).values(**values, updated_at=func.now())
            .returning(PaymentRow).execution_options(populate_existing=True))
    return (await session.execute(stmt)).scalar_one()


async def record_provider_call(session: AsyncSession, row: dict[str, Any]) -> None:
    """Upsert by idempotency key: a retried call got the provider's first answer again, one row stays."""
    stmt = insert(ProviderCallRow).values(**row)
    stmt = stmt.on_conflict_do_update(index_elements=["idempotency_key"], set_={
        "outcome": stmt.excluded.outcome, "provider_reference": stmt.excluded.provider_reference,
        "failure_reason": stmt.excluded.failure_reason})
    await session.execute(stmt)
