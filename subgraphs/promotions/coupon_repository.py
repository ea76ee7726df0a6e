"""SQL of coupons (schema `promotions`, see migrations/0002_coupons.sql): definitions, the locked redemption
path and the release of a cancelled order's slot. Core statements over the tables of models.py, mapped to frozen
records; the two data-modifying CTEs and the redemption path's one-row read are text() (each says why)."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.promotions.models import SCHEMA, coupon_redemptions, coupons

_COUPON_COLUMNS = (coupons.c.id, coupons.c.code, coupons.c.kind, coupons.c.value, coupons.c.currency,
                   coupons.c.min_subtotal, coupons.c.starts_at, coupons.c.ends_at, coupons.c.usage_limit,
                   coupons.c.per_user_limit, coupons.c.times_redeemed, coupons.c.created_by, coupons.c.created_at)


@dataclasses.dataclass(frozen=True, slots=True)
class CouponRecord:
    id: int
    code: str
    kind: str  # PERCENT | FIXED
    value: Decimal
    currency: str
    min_subtotal: Decimal
    starts_at: datetime
    ends_at: datetime | None
    usage_limit: int | None
    per_user_limit: int | None
    times_redeemed: int
    created_by: int | None
    created_at: datetime

    @property
    def remaining(self) -> int | None:
        return None if self.usage_limit is None else max(0, self.usage_limit - self.times_redeemed)


@dataclasses.dataclass(frozen=True, slots=True)
class RedemptionRecord:
    id: int
    coupon_id: int
    user_id: int
    idempotency_key: str
    order_id: int
    currency: str
    subtotal: Decimal
    discount: Decimal
    released_at: datetime | None


def _coupon(row: Any) -> CouponRecord:
    m = row._mapping
    return CouponRecord(**{k: m[k] for k in CouponRecord.__slots__})


def _redemption(row: Any) -> RedemptionRecord:
    m = row._mapping
    return RedemptionRecord(**{k: m[k] for k in RedemptionRecord.__slots__})


async def insert_coupon(session: AsyncSession, coupon: CouponRecord) -> CouponRecord | None:
    """The stored coupon, or None when the code is taken (the unique index decides, so two concurrent creations
    of one code cannot both succeed)."""
    values = {k: getattr(coupon, k) for k in ("id", "code", "kind", "value", "currency", "min_subtotal",
                                              "starts_at", "ends_at", "usage_limit", "per_user_limit", "created_by")}
    row = (await session.execute(insert(coupons).values(**values).on_conflict_do_nothing(index_elements=["code"])
                                 .returning(*_COUPON_COLUMNS))).first()
    return _coupon(row) if row else None


async def get_coupon_by_code(session: AsyncSession, code: str, *, lock: bool = False) -> CouponRecord | None:
    """`lock`: FOR UPDATE, the redemption path's serialization point for this coupon."""
    stmt = select(*_COUPON_COLUMNS).where(coupons.c.code == code)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    return _coupon(row) if row else None


async def list_coupons(session: AsyncSession, *, before_id: int | None, limit: int) -> list[CouponRecord]:
    stmt = select(*_COUPON_COLUMNS)
    if before_id is not None:
        stmt = stmt.where(coupons.c.id < before_id)
    rows = await session.execute(stmt.order_by(coupons.c.id.desc()).limit(limit))
    return [_coupon(r) for r in rows]


async def held_by_user(session: AsyncSession, coupon_id: int, user_id: int) -> int:
    """Redemptions of this coupon by this user that still hold a slot (not released)."""
    r = coupon_redemptions
    return (await session.execute(
        select(func.count()).select_from(r)
        .where(r.c.coupon_id == coupon_id, r.c.user_id == user_id, r.c.released_at.is_(None)))).scalar_one()


@dataclasses.dataclass(frozen=True, slots=True)
class RequestState:
    """What the redemption path needs to know about this request and this user, in one read."""
    existing: RedemptionRecord | None  # a redemption already made for this (user, idempotency key)
    held_by_user: int


# text(): always exactly one row (a LEFT JOIN from a one-row relation, plus a count) in one round trip on the
# contended redemption path; Core would hide that shape.
_REQUEST_STATE = text(f"""
SELECT r.id, r.coupon_id, r.user_id, r.idempotency_key, r.order_id, r.currency, r.subtotal, r.discount,
       r.released_at,
       (SELECT count(*) FROM {SCHEMA}.coupon_redemptions h
        WHERE h.coupon_id = CAST(:c AS bigint) AND h.user_id = CAST(:u AS bigint) AND h.released_at IS NULL) AS held
FROM (SELECT 1) one
LEFT JOIN {SCHEMA}.coupon_redemptions r ON r.user_id = CAST(:u AS bigint) AND r.idempotency_key = :k
""")


async def request_state(session: AsyncSession, *, coupon_id: int, user_id: int, idempotency_key: str) -> RequestState:
    row = (await session.execute(_REQUEST_STATE, {"c": coupon_id, "u": user_id, "k": idempotency_key})).one()
    return RequestState(existing=_redemption(row) if row.id is not None else None, held_by_user=row.held)


# text(): a data-modifying CTE (the counter and the row in one statement); Core would say it less clearly.
# The counter and the redemption row move together; `times_redeemed < usage_limit` re-checks the limit in the
# statement itself, so even a caller that skipped the checks could not pass it (and the CHECK constraint
# backs that up once more).
_REDEEM = text(f"""
WITH c AS (
    UPDATE {SCHEMA}.coupons SET times_redeemed = times_redeemed + 1
    WHERE id = CAST(:coupon_id AS bigint) AND (usage_limit IS NULL OR times_redeemed < usage_limit)
    RETURNING id
)
INSERT INTO {SCHEMA}.coupon_redemptions (id, coupon_id, user_id, idempotency_key, order_id, currency, subtotal,
                                         discount)
SELECT CAST(:id AS bigint), c.id, CAST(:user_id AS bigint), :key, CAST(:order_id AS bigint), :currency,
       CAST(:subtotal AS numeric), CAST(:discount AS numeric)
FROM c
RETURNING id
""")


async def insert_redemption(session: AsyncSession, redemption: RedemptionRecord) -> bool:
    """False when the usage limit is reached (nothing written). The caller holds the coupon row's lock."""
    row = (await session.execute(_REDEEM, {
        "id": redemption.id, "coupon_id": redemption.coupon_id, "user_id": redemption.user_id,
        "key": redemption.idempotency_key, "order_id": redemption.order_id, "currency": redemption.currency,
        "subtotal": redemption.subtotal, "discount": redemption.discount})).first()
    return row is not None


async def update_redemption_amounts(session: AsyncSession, redemption_id: int, *, subtotal: Decimal,
                                    discount: Decimal) -> None:
    await session.execute(update(coupon_redemptions).where(coupon_redemptions.c.id == redemption_id)
                          .values(subtotal=subtotal, discount=discount))


# text(): a data-modifying CTE (the redemption and the coupon's counter in one statement), like _REDEEM.
# Released once (released_at IS NULL is the guard), so a redelivered order.cancelled gives nothing back twice.
_RELEASE = text(f"""
WITH r AS (
    UPDATE {SCHEMA}.coupon_redemptions SET released_at = now()
    WHERE order_id = CAST(:order_id AS bigint) AND user_id = CAST(:user_id AS bigint) AND released_at IS NULL
    RETURNING coupon_id
), c AS (
    UPDATE {SCHEMA}.coupons k SET times_redeemed = k.times_redeemed - n.count
    FROM (SELECT coupon_id, count(*) AS count FROM r GROUP BY coupon_id) n
    WHERE k.id = n.coupon_id
    RETURNING k.id
)
SELECT count(*) FROM c
""")


async def release_for_order(session: AsyncSession, *, order_id: int, user_id: int) -> int:
    """Give the order's redemption slot back; returns how many coupons it touched (0 or 1)."""
    return (await session.execute(_RELEASE, {"order_id": order_id, "user_id": user_id})).scalar_one()


__all__ = [
    "SCHEMA",
    "CouponRecord",
    "RedemptionRecord",
    "RequestState",
    "get_coupon_by_code",
    "held_by_user",
    "insert_coupon",
    "insert_redemption",
    "list_coupons",
    "release_for_order",
    "request_state",
    "update_redemption_amounts",
]
