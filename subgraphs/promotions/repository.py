"""Postgres SQL of flash sales: definitions and their lifecycle (the hot state is in Redis: flash_sale_store.py).
Coupons keep their own SQL in coupons.py."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.promotions.models import SCHEMA, FlashSaleRecord, StockStatus

_COLUMNS = ("id, variant_id, product_id, sku, name, currency, regular_price, sale_price, starts_at, ends_at, "
            "total_stock, per_user_limit, stock_status, sold_units, settled_at, created_at")


def _sale(row: Any) -> FlashSaleRecord:
    m = row._mapping
    return FlashSaleRecord(**{**m, "currency": m["currency"].strip(),  # type: ignore[arg-type]
                              "stock_status": StockStatus(m["stock_status"])})


async def insert_sale(session: AsyncSession, values: dict[str, Any]) -> FlashSaleRecord:
    columns = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    row = (await session.execute(text(f"INSERT INTO {SCHEMA}.flash_sales ({columns}) VALUES ({params}) "
                                      f"RETURNING {_COLUMNS}"), values)).first()
    return _sale(row)


async def get_sale(session: AsyncSession, sale_id: int) -> FlashSaleRecord | None:
    row = (await session.execute(text(f"SELECT {_COLUMNS} FROM {SCHEMA}.flash_sales WHERE id = :id"),
                                 {"id": sale_id})).first()
    return _sale(row) if row else None


async def sales_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[FlashSaleRecord]:
    rows = await session.execute(text(f"SELECT {_COLUMNS} FROM {SCHEMA}.flash_sales WHERE id = ANY(:ids)"),
                                 {"ids": list(ids)})
    return [_sale(r) for r in rows]


async def list_sales(session: AsyncSession, *, active_at: datetime | None, active: bool | None,
                     limit: int) -> list[FlashSaleRecord]:
    """Newest first. active=True: in the window at `active_at`; False: outside it; None: all."""
    where = ""
    if active is True:
        where = "WHERE starts_at <= :now AND ends_at > :now"
    elif active is False:
        where = "WHERE NOT (starts_at <= :now AND ends_at > :now)"
    rows = await session.execute(text(f"SELECT {_COLUMNS} FROM {SCHEMA}.flash_sales {where} "
                                      f"ORDER BY starts_at DESC, id DESC LIMIT :limit"),
                                 {"now": active_at, "limit": limit})
    return [_sale(r) for r in rows]


async def set_stock_status(session: AsyncSession, sale_id: int, status: StockStatus) -> FlashSaleRecord | None:
    """Moves only out of PENDING: the first answer from inventory is final."""
    row = (await session.execute(text(
        f"UPDATE {SCHEMA}.flash_sales SET stock_status = :s WHERE id = :id AND stock_status = 'PENDING' "
        f"RETURNING {_COLUMNS}"), {"id": sale_id, "s": status.value})).first()
    return _sale(row) if row else None


async def held_sales_to_reconcile(session: AsyncSession, now: datetime) -> list[FlashSaleRecord]:
    """Sales whose Redis state may need work: held, and not settled yet."""
    rows = await session.execute(text(
        f"SELECT {_COLUMNS} FROM {SCHEMA}.flash_sales WHERE stock_status = 'HELD' AND settled_at IS NULL "
        f"ORDER BY ends_at LIMIT 200"))
    return [_sale(r) for r in rows]


async def mark_settled(session: AsyncSession, sale_id: int, sold_units: int) -> bool:
    result = await session.execute(text(
        f"UPDATE {SCHEMA}.flash_sales SET settled_at = now(), sold_units = :sold "
        f"WHERE id = :id AND settled_at IS NULL"), {"id": sale_id, "sold": sold_units})
    return result.rowcount == 1
