"""Coupons: the rules (creation, what a code is worth for a subtotal, atomic redemption, release on
cancellation). The internal endpoints the cart and orders call are in internal.py.

Redemption is the contended path: every checkout that redeems one code locks that coupon's row
(`SELECT ... FOR UPDATE`), so the per-user count, the usage limit and the counter update are decided one
request at a time; the conditional UPDATE in coupon_repository re-checks the limit and a CHECK constraint
backs it. A redemption is keyed by (user, placeOrder idempotency key): a replayed or concurrent duplicate
placeOrder finds the row and reuses it, and is answered the order id the first request chose, so both
requests insert the same order and orders' insert lets exactly one of them win (docs/commerce-spine.md).
"""
from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.errors import BadUserInput
from kernel.ids import next_id
from kernel.money import check_currency, coupon_discount, normalize_coupon_code, parse_amount
from subgraphs.promotions import coupon_repository as repository
from subgraphs.promotions.coupon_repository import CouponRecord, RedemptionRecord
from subgraphs.promotions.errors import (
    CouponCodeTaken,
    CouponKeyReused,
    CouponNotApplicable,
    CouponNotFound,
    CouponUnavailable,
    InvalidCouponInput,
)

_HUNDRED = Decimal(100)
_MAX_LIMIT = 1_000_000_000


class CouponKind(str, enum.Enum):
    PERCENT = "PERCENT"
    FIXED = "FIXED"


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---- input ------------------------------------------------------------------------------------------------

def normalize_code(raw: str, *, field: str = "code") -> str:
    """Codes are case-insensitive: stored and compared upper-case."""
    code = normalize_coupon_code(raw)
    if code is None:
        raise InvalidCouponInput(f"'{field}' must be 3..32 characters: letters, digits, '-' or '_'", field=field)
    return code


def _utc(at: datetime) -> datetime:
    # A time without a zone is taken as UTC (documented on the input).
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _limit(value: int | None, *, field: str) -> int | None:
    if value is not None and not 1 <= value <= _MAX_LIMIT:
        raise InvalidCouponInput(f"'{field}' must be between 1 and {_MAX_LIMIT}, or null for no limit", field=field)
    return value


@dataclasses.dataclass(frozen=True)
class CreateCouponIn:
    code: str
    kind: CouponKind
    value: str
    currency: str = "USD"
    min_subtotal: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    usage_limit: int | None = None
    per_user_limit: int | None = 1


def validate_create(coupon_in: CreateCouponIn, *, created_by: int | None, now: datetime) -> CouponRecord:
    """Everything checkable without I/O; the code's uniqueness is the insert's to decide."""
    code = normalize_code(coupon_in.code)
    kind = CouponKind(coupon_in.kind)
    value = parse_amount(coupon_in.value, field="value", allow_zero=False)
    if kind is CouponKind.PERCENT and value > _HUNDRED:
        raise InvalidCouponInput("A PERCENT coupon's 'value' must be at most 100", field="value")
    currency = (coupon_in.currency or "").strip().upper()
    check_currency(currency)
    min_subtotal = parse_amount(coupon_in.min_subtotal if coupon_in.min_subtotal is not None else "0",
                                field="minSubtotal")
    starts_at = _utc(coupon_in.starts_at) if coupon_in.starts_at is not None else now
    ends_at = _utc(coupon_in.ends_at) if coupon_in.ends_at is not None else None
    if ends_at is not None and ends_at <= starts_at:
        raise InvalidCouponInput("'endsAt' must be after 'startsAt'", field="endsAt")
    if ends_at is not None and ends_at <= now:
        raise InvalidCouponInput("'endsAt' must be in the future", field="endsAt")
    return CouponRecord(id=next_id(), code=code, kind=kind.value, value=value, currency=currency,
                        min_subtotal=min_subtotal, starts_at=starts_at, ends_at=ends_at,
                        usage_limit=_limit(coupon_in.usage_limit, field="usageLimit"),
                        per_user_limit=_limit(coupon_in.per_user_limit, field="perUserLimit"),
                        times_redeemed=0, created_by=created_by, created_at=now)


# ---- rules ------------------------------------------------------------------------------------------------

def discount_for(coupon: CouponRecord, subtotal: Decimal) -> Decimal:
    """PERCENT: the share of the subtotal, rounded half-up to cents; FIXED: the amount, never above the subtotal."""
    return coupon_discount(coupon.kind, coupon.value, subtotal)


def is_active(coupon: CouponRecord, now: datetime) -> bool:
    return coupon.starts_at <= now and (coupon.ends_at is None or now < coupon.ends_at)


def _check_window(coupon: CouponRecord, now: datetime) -> None:
    if now < coupon.starts_at:
        raise CouponUnavailable(coupon.code, "This coupon is not active yet")
    if coupon.ends_at is not None and now >= coupon.ends_at:
        raise CouponUnavailable(coupon.code, "This coupon has expired")


def _check_order(coupon: CouponRecord, subtotal: Decimal, currency: str) -> None:
    if currency != coupon.currency:
        raise CouponNotApplicable(coupon.code, f"This coupon applies to {coupon.currency} orders only")
    if subtotal < coupon.min_subtotal:
        raise CouponNotApplicable(coupon.code, f"This coupon requires a subtotal of at least "
                                               f"{coupon.min_subtotal} {coupon.currency}")


def _fully_redeemed(coupon: CouponRecord) -> CouponUnavailable:
    return CouponUnavailable(coupon.code, "This coupon has been fully redeemed")


def _user_limit_reached(coupon: CouponRecord) -> CouponUnavailable:
    return CouponUnavailable(coupon.code, "You have already used this coupon as often as it allows")


# ---- service ----------------------------------------------------------------------------------------------

async def create_coupon(session: AsyncSession, *, caller: Principal, coupon_in: CreateCouponIn,
                        now: datetime | None = None) -> CouponRecord:
    """ADMIN: define a coupon. CONFLICT when the code (case-insensitively) exists."""
    caller.require_role("ADMIN")
    coupon = validate_create(coupon_in, created_by=caller.user_id, now=now or utc_now())
    stored = await repository.insert_coupon(session, coupon)
    if stored is None:
        raise CouponCodeTaken(coupon.code)
    return stored


async def get_coupon(session: AsyncSession, *, caller: Principal, code: str) -> CouponRecord | None:
    caller.require_role("ADMIN")
    normalized = normalize_coupon_code(code)
    if normalized is None:
        return None  # cannot exist
    return await repository.get_coupon_by_code(session, normalized)


async def list_coupons(session: AsyncSession, *, caller: Principal, first: int,
                       after: int | None) -> list[CouponRecord]:
    caller.require_role("ADMIN")
    if not 1 <= first <= 200:
        raise BadUserInput("'first' must be 1..200", field="first")
    return await repository.list_coupons(session, before_id=after, limit=first)


@dataclasses.dataclass(frozen=True)
class Quote:
    coupon: CouponRecord
    discount: Decimal


async def quote(session: AsyncSession, *, user_id: int | None, code: str, subtotal: Decimal, currency: str,
                now: datetime | None = None) -> Quote:
    """Whether `code` applies to a cart of `subtotal` now, and what it takes off. Reads only: the limits may
    still be reached before checkout, where `redeem` decides."""
    now = now or utc_now()
    coupon = await repository.get_coupon_by_code(session, normalize_code(code))
    if coupon is None:
        raise CouponNotFound(code)
    _check_window(coupon, now)
    _check_order(coupon, subtotal, currency)
    if coupon.remaining == 0:
        raise _fully_redeemed(coupon)
    if (user_id is not None and coupon.per_user_limit is not None
            and await repository.held_by_user(session, coupon.id, user_id) >= coupon.per_user_limit):
        raise _user_limit_reached(coupon)
    return Quote(coupon=coupon, discount=discount_for(coupon, subtotal))


@dataclasses.dataclass(frozen=True)
class Redemption:
    coupon: CouponRecord
    redemption_id: int
    order_id: int
    discount: Decimal
    replayed: bool


async def redeem(session: AsyncSession, *, user_id: int, code: str, subtotal: Decimal, currency: str,
                 idempotency_key: str, order_id: int, now: datetime | None = None) -> Redemption:
    """Take one use of `code` for the order a placeOrder request is about to create, or, for a request already
    seen (same user and idempotency key), return its redemption and the order id it chose. Refused, writing
    nothing, when the code is unknown, out of its window, not applicable to this subtotal, the user's uses are
    spent or the coupon is fully redeemed."""
    now = now or utc_now()
    # The lock serializes every redemption of this coupon: the checks below and the counter see no interleaving.
    coupon = await repository.get_coupon_by_code(session, normalize_code(code), lock=True)
    if coupon is None:
        raise CouponNotFound(code)
    state = await repository.request_state(session, coupon_id=coupon.id, user_id=user_id,
                                           idempotency_key=idempotency_key)
    existing = state.existing
    if existing is not None:
        if existing.coupon_id != coupon.id:
            raise CouponKeyReused()
        # The first attempt holds the slot (its order may not exist yet, or its commit failed): reuse it, priced
        # for this request's subtotal.
        _check_order(coupon, subtotal, currency)
        discount = discount_for(coupon, subtotal)
        if (existing.subtotal, existing.discount) != (subtotal, discount):
            await repository.update_redemption_amounts(session, existing.id, subtotal=subtotal, discount=discount)
        return Redemption(coupon=coupon, redemption_id=existing.id, order_id=existing.order_id, discount=discount,
                          replayed=True)
    _check_window(coupon, now)
    _check_order(coupon, subtotal, currency)
    if coupon.per_user_limit is not None and state.held_by_user >= coupon.per_user_limit:
        raise _user_limit_reached(coupon)
    if coupon.remaining == 0:
        raise _fully_redeemed(coupon)
    discount = discount_for(coupon, subtotal)
    redemption = RedemptionRecord(id=next_id(), coupon_id=coupon.id, user_id=user_id,
                                  idempotency_key=idempotency_key, order_id=order_id, currency=currency,
                                  subtotal=subtotal, discount=discount, released_at=None)
    if not await repository.insert_redemption(session, redemption):
        raise _fully_redeemed(coupon)
    return Redemption(coupon=dataclasses.replace(coupon, times_redeemed=coupon.times_redeemed + 1),
                      redemption_id=redemption.id, order_id=order_id, discount=discount, replayed=False)


async def release_order(session: AsyncSession, *, order_id: int, user_id: int) -> bool:
    """The order was cancelled: its redemption (if any) no longer counts against either limit. Idempotent."""
    return await repository.release_for_order(session, order_id=order_id, user_id=user_id) > 0
