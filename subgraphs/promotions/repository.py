"""Postgres SQL of flash sales: definitions and their lifecycle (the hot state is in Redis: flash_sale_store.py).
Coupons keep theirs in coupon_repository.py. Core statements over the tables of models.py."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, func, insert, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of, rowcount
from subgraphs.promotions.models import FlashSaleRecord, StockStatus, flash_sales

_SALE_COLUMNS = (flash_sales.c.id, flash_sales.c.variant_id, flash_sales.c.product_id, flash_sales.c.sku,
                 flash_sales.c.name, flash_sales.c.currency, flash_sales.c.regular_price, flash_sales.c.sale_price,
                 flash_sales.c.starts_at, flash_sales.c.ends_at, flash_sales.c.total_stock,
                 flash_sales.c.per_user_limit, flash_sales.c.stock_status, flash_sales.c.sold_units,
                 flash_sales.c.settled_at, flash_sales.c.created_at)


def _sale(row: Any) -> FlashSaleRecord:
    m = row._mapping
    return FlashSaleRecord(**{**m, "currency": m["currency"].strip(),
                              "stock_status": StockStatus(m["stock_status"])})


async def insert_sale(session: AsyncSession, values: dict[str, Any]) -> FlashSaleRecord:
    row = (await session.execute(insert(flash_sales).values(**values).returning(*_SALE_COLUMNS))).one()
    return _sale(row)


# A purchase reads its sale's rules through this when they are not cached (flash_sales.sale_rules): built once.
_SALE_BY_ID = select(*_SALE_COLUMNS).where(flash_sales.c.id == bindparam("id"))


async def get_sale(session: AsyncSession, sale_id: int) -> FlashSaleRecord | None:
    row = (await session.execute(_SALE_BY_ID, {"id": sale_id})).first()
    return _sale(row) if row else None


async def sales_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[FlashSaleRecord]:
    rows = await session.execute(select(*_SALE_COLUMNS).where(any_of(flash_sales.c.id, ids, BigInteger)))
    return [_sale(r) for r in rows]


async def list_sales(session: AsyncSession, *, active_at: datetime | None, active: bool | None,
                     limit: int) -> list[FlashSaleRecord]:
    """Newest first. active=True: in the window at `active_at`; False: outside it; None: all."""
    stmt = select(*_SALE_COLUMNS)
    in_window = and_(flash_sales.c.starts_at <= active_at, flash_sales.c.ends_at > active_at)
    if active is True:
        stmt = stmt.where(in_window)
    elif active is False:
        stmt = stmt.where(not_(in_window))
    rows = await session.execute(stmt.order_by(flash_sales.c.starts_at.desc(), flash_sales.c.id.desc()).limit(limit))
    return [_sale(r) for r in rows]


async def set_stock_status(session: AsyncSession, sale_id: int, status: StockStatus) -> FlashSaleRecord | None:
    """Moves only out of PENDING: the first answer from inventory is final."""
    row = (await session.execute(
        update(flash_sales)
        .where(flash_sales.c.id == sale_id, flash_sales.c.stock_status == StockStatus.PENDING.value)
        .values(stock_status=status.value).returning(*_SALE_COLUMNS))).first()
    return _sale(row) if row else None


async def held_sales_to_reconcile(session: AsyncSession, now: datetime) -> list[FlashSaleRecord]:
    """Sales whose Redis state may need work: held, and not settled yet."""
    rows = await session.execute(
        select(*_SALE_COLUMNS)
        .where(flash_sales.c.stock_status == StockStatus.HELD.value, flash_sales.c.settled_at.is_(None))
        .order_by(flash_sales.c.ends_at).limit(200))
    return [_sale(r) for r in rows]


async def mark_settled(session: AsyncSession, sale_id: int, sold_units: int) -> bool:
    result = await session.execute(
        update(flash_sales).where(flash_sales.c.id == sale_id, flash_sales.c.settled_at.is_(None))
        .values(settled_at=func.now(), sold_units=sold_units))
    return rowcount(result) == 1
