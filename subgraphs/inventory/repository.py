"""SQL for the inventory domain: locks, conditional updates and the batched stock read.

Every statement that moves stock is a single conditional UPDATE whose WHERE clause carries the invariant
(available never below zero, reserved never above on_hand), so a wrong caller gets "0 rows", never a
negative count; the table CHECKs are the backstop behind that.

Statements are Core over the tables of models.py, except the reservation path's locks and conditional updates
(every order.placed / paid / cancelled and flash-sale hold runs them) and the unnest bulk writes: those stay
text(), each marked with why.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from sqlalchemy import BigInteger, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of, rowcount
from subgraphs.inventory.models import (
    OrderReservationRow,
    ReservationRow,
    StockAdjustmentRow,
    StockLevelRow,
    VariantRow,
    WarehouseRow,
)

INT_MAX = 2_147_483_647


@dataclasses.dataclass(frozen=True, slots=True)
class StockRow:
    variant_id: int
    warehouse_id: int
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclasses.dataclass(frozen=True, slots=True)
class Totals:
    """A variant's stock summed over warehouses."""
    on_hand: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclasses.dataclass(frozen=True, slots=True)
class ReservationLine:
    variant_id: int
    warehouse_id: int
    quantity: int
    status: str


# ---- warehouses -------------------------------------------------------------------------------------------

async def list_warehouses(session: AsyncSession) -> list[WarehouseRow]:
    return list((await session.execute(select(WarehouseRow).order_by(WarehouseRow.code))).scalars())


async def warehouse_ids(session: AsyncSession) -> list[int]:
    return list((await session.execute(select(WarehouseRow.id).order_by(WarehouseRow.id))).scalars())


async def warehouse_exists(session: AsyncSession, warehouse_id: int) -> bool:
    found = await session.execute(select(WarehouseRow.id).where(WarehouseRow.id == warehouse_id))
    return found.first() is not None


async def insert_warehouse_if_code_free(session: AsyncSession, *, id: int, code: str, name: str) -> WarehouseRow | None:
    stmt = (insert(WarehouseRow).values(id=id, code=code, name=name)
            .on_conflict_do_nothing(index_elements=["code"]).returning(WarehouseRow))
    return (await session.execute(stmt)).scalar_one_or_none()


async def warehouse_by_code(session: AsyncSession, code: str) -> WarehouseRow | None:
    return (await session.execute(select(WarehouseRow).where(WarehouseRow.code == code))).scalar_one_or_none()


async def warehouses_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[WarehouseRow]:
    return list((await session.execute(select(WarehouseRow).where(any_of(WarehouseRow.id, ids)))).scalars())


# ---- variants ---------------------------------------------------------------------------------------------

async def variant_exists(session: AsyncSession, variant_id: int) -> bool:
    found = await session.execute(select(VariantRow.variant_id).where(VariantRow.variant_id == variant_id))
    return found.first() is not None


async def register_variants(session: AsyncSession, variants: Sequence[tuple[int, int]]) -> int:
    """(product_id, variant_id) pairs; already known variants are left as they are (their threshold may
    have been tuned, and a replayed product event must not reset it). Returns how many were new."""
    if not variants:
        return 0
    result = await session.execute(
        insert(VariantRow).on_conflict_do_nothing(index_elements=["variant_id"]).returning(VariantRow.variant_id),
        [{"variant_id": v, "product_id": p} for p, v in variants])
    return len(result.all())


async def ensure_stock_rows(session: AsyncSession, variant_ids: Sequence[int]) -> None:
    """A zero row per (variant, existing warehouse); rows that exist (stock set or adjusted before the
    product event arrived) are not touched."""
    if not variant_ids:
        return
    # text(): an unnest bulk insert crossed with every warehouse, in key order (one statement per product event).
    await session.execute(text("""
        INSERT INTO inventory.stock_levels (variant_id, warehouse_id, on_hand, reserved)
        SELECT v, w.id, 0, 0 FROM unnest(CAST(:ids AS bigint[])) AS v CROSS JOIN inventory.warehouses w
        ORDER BY v, w.id
        ON CONFLICT DO NOTHING"""), {"ids": sorted(set(variant_ids))})


async def set_threshold(session: AsyncSession, variant_id: int, threshold: int) -> None:
    await session.execute(update(VariantRow).where(VariantRow.variant_id == variant_id)
                          .values(low_stock_threshold=threshold))


# ---- stock: locks and conditional updates -----------------------------------------------------------------

# text(): the reservation path's lock (hot path), ordered so overlapping transactions queue instead of deadlocking.
_LOCK_SQL = text("""
SELECT variant_id, warehouse_id, on_hand, reserved FROM inventory.stock_levels
WHERE variant_id = ANY(CAST(:ids AS bigint[]))
ORDER BY variant_id, warehouse_id
FOR UPDATE""")


async def lock_stock(session: AsyncSession, variant_ids: Iterable[int]) -> list[StockRow]:
    """Lock every warehouse row of these variants, always in (variant_id, warehouse_id) order: two
    transactions touching overlapping variants then queue instead of deadlocking (the LockRows step runs
    above the sort, so rows are locked in the ORDER BY order)."""
    ids = sorted(set(variant_ids))
    if not ids:
        return []
    result = await session.execute(_LOCK_SQL, {"ids": ids})
    return [StockRow(*r) for r in result.all()]


# text() for the conditional updates below: the reservation path's hot statements, each one round trip whose
# WHERE carries the invariant, kept as plain SQL to read side by side.
async def reserve_units(session: AsyncSession, variant_id: int, warehouse_id: int, quantity: int) -> bool:
    result = await session.execute(text("""
        UPDATE inventory.stock_levels SET reserved = reserved + :q, updated_at = now()
        WHERE variant_id = :v AND warehouse_id = :w AND on_hand - reserved >= :q"""),
        {"v": variant_id, "w": warehouse_id, "q": quantity})
    return rowcount(result) == 1


@dataclasses.dataclass(frozen=True, slots=True)
class StockMove:
    """A change to one stock row that decides nothing (a paid order's units leave, a cancelled order's units
    come back): applied as given, the invariants checked by the statement that applies it."""
    variant_id: int
    warehouse_id: int
    on_hand: int = 0
    reserved: int = 0


async def move_stock(session: AsyncSession, moves: Sequence[StockMove]) -> bool:
    """Apply every move in ONE statement (moves of the same row are summed); the caller holds the rows' locks
    (lock_stock). A row whose result would break an invariant (on_hand or reserved below zero, reserved above
    on_hand, on_hand above INT_MAX), or that does not exist, is left alone: returns whether every moved row
    took its moves."""
    summed: dict[tuple[int, int], list[int]] = {}
    for move in moves:
        totals = summed.setdefault((move.variant_id, move.warehouse_id), [0, 0])
        totals[0] += move.on_hand
        totals[1] += move.reserved
    if not summed:
        return True
    keys = sorted(summed)
    # text(): an unnest bulk update whose WHERE carries the invariants, on the reservation path (hot path).
    result = await session.execute(text("""
        UPDATE inventory.stock_levels AS s
        SET on_hand = s.on_hand + m.on_hand, reserved = s.reserved + m.reserved, updated_at = now()
        FROM unnest(CAST(:v AS bigint[]), CAST(:w AS bigint[]), CAST(:o AS integer[]), CAST(:r AS integer[]))
             AS m(variant_id, warehouse_id, on_hand, reserved)
        WHERE s.variant_id = m.variant_id AND s.warehouse_id = m.warehouse_id
          AND s.on_hand::bigint + m.on_hand BETWEEN 0 AND :max AND s.reserved::bigint + m.reserved >= 0
          AND s.reserved::bigint + m.reserved <= s.on_hand::bigint + m.on_hand"""),
        {"v": [v for v, _ in keys], "w": [w for _, w in keys], "o": [summed[k][0] for k in keys],
         "r": [summed[k][1] for k in keys], "max": INT_MAX})
    return rowcount(result) == len(keys)


async def ensure_stock_row(session: AsyncSession, variant_id: int, warehouse_id: int) -> None:
    await session.execute(insert(StockLevelRow).values(variant_id=variant_id, warehouse_id=warehouse_id, on_hand=0,
                                                       reserved=0).on_conflict_do_nothing())


async def adjust_on_hand(session: AsyncSession, variant_id: int, warehouse_id: int, delta: int) -> int | None:
    """on_hand += delta unless that would drop below the reserved units (so never below zero) or overflow;
    returns the new on_hand, or None when refused."""
    # text(): a conditional update like the ones above (the same invariant in the WHERE).
    result = await session.execute(text("""
        UPDATE inventory.stock_levels SET on_hand = on_hand + :d, updated_at = now()
        WHERE variant_id = :v AND warehouse_id = :w
          AND on_hand::bigint + :d >= reserved AND on_hand::bigint + :d <= :max
        RETURNING on_hand"""), {"v": variant_id, "w": warehouse_id, "d": delta, "max": INT_MAX})
    return result.scalar_one_or_none()


_STOCK_COLUMNS = (StockLevelRow.variant_id, StockLevelRow.warehouse_id, StockLevelRow.on_hand, StockLevelRow.reserved)


async def stock_row(session: AsyncSession, variant_id: int, warehouse_id: int) -> StockRow | None:
    result = await session.execute(select(*_STOCK_COLUMNS).where(StockLevelRow.variant_id == variant_id,
                                                                 StockLevelRow.warehouse_id == warehouse_id))
    row = result.first()
    return StockRow(*row) if row else None


async def set_stock_where_empty(session: AsyncSession, rows: Sequence[StockRow]) -> list[StockRow]:
    """on_hand for rows that hold nothing yet (missing, or zero rows made by product events); stock that is
    really there is never overwritten, so a repeated call writes nothing. Returns the rows actually written."""
    if not rows:
        return []
    # text(): an unnest bulk upsert whose conflict update is conditional (one statement for any number of rows).
    result = await session.execute(text("""
        INSERT INTO inventory.stock_levels AS s (variant_id, warehouse_id, on_hand, reserved)
        SELECT * FROM unnest(CAST(:v AS bigint[]), CAST(:w AS bigint[]), CAST(:q AS integer[]),
                             CAST(:r AS integer[]))
        ON CONFLICT (variant_id, warehouse_id) DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = now()
            WHERE s.on_hand = 0 AND s.reserved = 0
        RETURNING variant_id, warehouse_id, on_hand, reserved"""),
        {"v": [r.variant_id for r in rows], "w": [r.warehouse_id for r in rows],
         "q": [r.on_hand for r in rows], "r": [0 for _ in rows]})
    return [StockRow(*r) for r in result.all()]


# ---- reads ------------------------------------------------------------------------------------------------

# text(): on the reservation path (the stock events after every reservation) and behind every stock read.
_TOTALS_SQL = text("""
SELECT variant_id, sum(on_hand)::bigint, sum(reserved)::bigint FROM inventory.stock_levels
WHERE variant_id = ANY(CAST(:ids AS bigint[])) GROUP BY variant_id""")


# text() for the stock-change path: both lookups every stock change needs, in one round trip.
_TOTALS_AND_THRESHOLDS_SQL = text("""
SELECT i.id, t.on_hand, t.reserved, v.low_stock_threshold
FROM unnest(CAST(:ids AS bigint[])) AS i(id)
LEFT JOIN (SELECT variant_id, sum(on_hand)::bigint AS on_hand, sum(reserved)::bigint AS reserved
           FROM inventory.stock_levels WHERE variant_id = ANY(CAST(:ids AS bigint[])) GROUP BY variant_id) t
       ON t.variant_id = i.id
LEFT JOIN inventory.variants v ON v.variant_id = i.id""")


async def totals_and_thresholds(session: AsyncSession,
                                variant_ids: Iterable[int]) -> tuple[dict[int, Totals], dict[int, int]]:
    """`totals` and `thresholds` of these variants in one statement (what `_emit_stock_changes` needs)."""
    ids = sorted(set(variant_ids))
    if not ids:
        return {}, {}
    found: dict[int, Totals] = {}
    limits: dict[int, int] = {}
    for variant_id, on_hand, reserved, threshold in (await session.execute(_TOTALS_AND_THRESHOLDS_SQL,
                                                                           {"ids": ids})).all():
        if on_hand is not None:
            found[variant_id] = Totals(on_hand=int(on_hand), reserved=int(reserved))
        if threshold is not None:
            limits[variant_id] = threshold
    return found, limits


async def totals(session: AsyncSession, variant_ids: Iterable[int]) -> dict[int, Totals]:
    """Variant id -> totals over warehouses, in ONE statement; unknown variants are simply absent."""
    ids = list(set(variant_ids))
    if not ids:
        return {}
    result = await session.execute(_TOTALS_SQL, {"ids": ids})
    return {v: Totals(on_hand=int(o), reserved=int(r)) for v, o, r in result.all()}


async def stock_rows(session: AsyncSession, variant_ids: Iterable[int]) -> list[StockRow]:
    ids = list(set(variant_ids))
    if not ids:
        return []
    result = await session.execute(select(*_STOCK_COLUMNS).where(any_of(StockLevelRow.variant_id, ids, BigInteger))
                                   .order_by(StockLevelRow.variant_id, StockLevelRow.warehouse_id))
    return [StockRow(*r) for r in result.all()]


# ---- reservations -----------------------------------------------------------------------------------------

async def claim_order(session: AsyncSession, order_id: int, outcome: str) -> bool:
    """Record the first decision about an order. False when one was recorded before (a concurrent duplicate
    waits here on the primary key until the first commits, then sees the conflict)."""
    # text(): the reservation path's arbiter (hot path), one round trip.
    result = await session.execute(text("""
        INSERT INTO inventory.order_reservations (order_id, outcome) VALUES (:o, :outcome)
        ON CONFLICT DO NOTHING RETURNING order_id"""), {"o": order_id, "outcome": outcome})
    return result.first() is not None


async def order_outcome(session: AsyncSession, order_id: int) -> str | None:
    result = await session.execute(select(OrderReservationRow.outcome).where(OrderReservationRow.order_id == order_id))
    return result.scalar_one_or_none()


async def decided_orders(session: AsyncSession, order_ids: Sequence[int]) -> set[int]:
    """Those of these orders (or flash sales: their holds share the table) inventory has recorded a decision about."""
    result = await session.execute(select(OrderReservationRow.order_id)
                                   .where(any_of(OrderReservationRow.order_id, order_ids, BigInteger)))
    return set(result.scalars())


async def set_order_outcome(session: AsyncSession, order_id: int, outcome: str) -> None:
    # text(): on the reservation path (hot path), next to claim_order.
    await session.execute(text("UPDATE inventory.order_reservations SET outcome = :outcome WHERE order_id = :o"),
                          {"o": order_id, "outcome": outcome})


async def insert_reservations(session: AsyncSession, order_id: int, lines: Sequence[tuple[int, int, int]]) -> None:
    """(variant_id, warehouse_id, quantity) lines, status RESERVED."""
    # text(): an unnest bulk insert on the reservation path (one statement for every line of the order).
    await session.execute(text("""
        INSERT INTO inventory.reservations (order_id, variant_id, warehouse_id, quantity, status)
        SELECT CAST(:o AS bigint), v, w, q, 'RESERVED'
        FROM unnest(CAST(:v AS bigint[]), CAST(:w AS bigint[]), CAST(:q AS integer[])) AS t(v, w, q)"""),
        {"o": order_id, "v": [v for v, _, _ in lines], "w": [w for _, w, _ in lines], "q": [q for _, _, q in lines]})


async def lock_reservations(session: AsyncSession, order_id: int, statuses: Sequence[str]) -> list[ReservationLine]:
    # text(): the commit/release path's lock (hot path), in the same key order as lock_stock.
    result = await session.execute(text("""
        SELECT variant_id, warehouse_id, quantity, status FROM inventory.reservations
        WHERE order_id = :o AND status = ANY(CAST(:s AS text[]))
        ORDER BY variant_id, warehouse_id
        FOR UPDATE"""), {"o": order_id, "s": list(statuses)})
    return [ReservationLine(*r) for r in result.all()]


async def set_reservation_status(session: AsyncSession, order_id: int, line: ReservationLine, status: str) -> bool:
    # text(): a conditional update on the commit/release path (hot path), like the stock updates.
    result = await session.execute(text("""
        UPDATE inventory.reservations SET status = :new, updated_at = now()
        WHERE order_id = :o AND variant_id = :v AND warehouse_id = :w AND status = :old"""),
        {"o": order_id, "v": line.variant_id, "w": line.warehouse_id, "old": line.status, "new": status})
    return rowcount(result) == 1


async def close_reservation(session: AsyncSession, order_id: int, line: ReservationLine, status: str,
                            quantity: int) -> bool:
    """Move a line on from `line.status` to `status`, keeping `quantity` of it (a flash sale's hold that
    shipped only part of its units records what shipped; the rest went back to stock)."""
    # text(): a conditional update, like set_reservation_status.
    result = await session.execute(text("""
        UPDATE inventory.reservations SET status = :new, quantity = :q, updated_at = now()
        WHERE order_id = :o AND variant_id = :v AND warehouse_id = :w AND status = :old"""),
        {"o": order_id, "v": line.variant_id, "w": line.warehouse_id, "old": line.status, "new": status,
         "q": quantity})
    return rowcount(result) == 1


async def reservations_of(session: AsyncSession, order_id: int) -> list[ReservationLine]:
    r = ReservationRow
    result = await session.execute(select(r.variant_id, r.warehouse_id, r.quantity, r.status)
                                   .where(r.order_id == order_id).order_by(r.variant_id, r.warehouse_id))
    return [ReservationLine(*row) for row in result.all()]


# ---- audit ------------------------------------------------------------------------------------------------

async def add_adjustments(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        await session.execute(insert(StockAdjustmentRow), list(rows))
