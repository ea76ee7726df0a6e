"""Coupons: the rules (creation, what a code is worth for a subtotal, atomic redemption, release on
cancellation) and the internal endpoints the cart and orders call.

Redemption is the contended path: every checkout that redeems one code locks that coupon's row
(`SELECT ... FOR UPDATE`), so the per-user count, the usage limit and the counter update are decided one
request at a time; the conditional UPDATE in coupon_repository re-checks the limit and a CHECK constraint
backs it. A redemption is keyed by (user, placeOrder idempotency key): a replayed or concurrent duplicate
placeOrder finds the row and reuses it, and is answered the order id the first request chose, so both
requests insert the same order and orders' insert lets exactly one of them win (docs/commerce-spine.md).

Internal endpoints (Authorization: the caller's bearer token, forwarded; bodies and answers are JSON, money a
decimal string, errors `{code, message}` with 400/401/403/409 as kernel.peers maps them back):
  POST /internal/coupons/quote   {code, subtotal, currency}        -> 200 {code, kind, value, currency,
        min_subtotal, starts_at, ends_at, discount}   whether the code applies now (the cart's applyCoupon);
        nothing is written. Without a token the per-user limit is not checked (a guest cart).
  POST /internal/coupons/redeem  {code, subtotal, currency, idempotency_key, order_id}  (token required)
        -> 200 {... the quote fields, order_id, redemption_id, replayed}   placeOrder's redemption; `order_id`
        is the id the order must be created with (the first request's for a replay).
  POST /internal/coupons/release {order_id}  (token required) -> 200 {released}   the caller's redemption for
        an order that will never exist (its idempotency key was taken by a different request); idempotent.
"""
from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.auth import Principal
from kernel.errors import AppError, BadUserInput, Unauthenticated
from kernel.graphql import RequestContext, ServiceResources
from kernel.ids import next_id
from kernel.money import coupon_discount
from kernel.peers import error_response, json_response
from subgraphs.promotions import coupon_repository as repository
from subgraphs.promotions.coupon_repository import CouponRecord, RedemptionRecord
from subgraphs.promotions.errors import (CouponCodeTaken, CouponKeyReused, CouponNotApplicable, CouponNotFound,
                                         CouponUnavailable, InvalidCouponInput)

_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)
_MAX_AMOUNT = Decimal("999999999999.99")  # numeric(14,2)
_CODE = re.compile(r"[A-Z0-9_-]{3,32}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_LIMIT = 1_000_000_000


class CouponKind(str, enum.Enum):
    PERCENT = "PERCENT"
    FIXED = "FIXED"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ---- input ------------------------------------------------------------------------------------------------

def normalize_code(raw: str, *, field: str = "code") -> str:
    """Codes are case-insensitive: stored and compared upper-case."""
    code = (raw or "").strip().upper()
    if not _CODE.fullmatch(code):
        raise InvalidCouponInput(f"'{field}' must be 3..32 characters: letters, digits, '-' or '_'", field=field)
    return code


def _amount(raw: str | None, *, field: str, positive: bool) -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise InvalidCouponInput(f"'{field}' must be a decimal number such as \"10.00\"", field=field) from None
    if not value.is_finite() or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidCouponInput(f"'{field}' must be a decimal number with at most 2 decimals", field=field)
    if value > _MAX_AMOUNT or value < 0 or (positive and value == 0):
        raise InvalidCouponInput(f"'{field}' must be {'greater than 0' if positive else 'at least 0'} "
                                 f"and at most {_MAX_AMOUNT}", field=field)
    return value.quantize(_CENT)


def _utc(at: datetime) -> datetime:
    # A time without a zone is taken as UTC (documented on the input).
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


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
    value = _amount(coupon_in.value, field="value", positive=True)
    if kind is CouponKind.PERCENT and value > _HUNDRED:
        raise InvalidCouponInput("A PERCENT coupon's 'value' must be at most 100", field="value")
    currency = (coupon_in.currency or "").strip().upper()
    if not _CURRENCY.fullmatch(currency):
        raise InvalidCouponInput("'currency' must be an ISO 4217 code such as \"USD\"", field="currency")
    min_subtotal = _amount(coupon_in.min_subtotal if coupon_in.min_subtotal is not None else "0",
                           field="minSubtotal", positive=False)
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
    normalized = (code or "").strip().upper()
    if not _CODE.fullmatch(normalized):
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
    if user_id is not None and coupon.per_user_limit is not None:
        if await repository.held_by_user(session, coupon.id, user_id) >= coupon.per_user_limit:
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


async def on_order_cancelled(session: AsyncSession, payload: dict[str, Any]) -> None:
    """order.cancelled handler (called by the promotions consumer inside its transaction): release the
    cancelled order's redemption so its slot can be used again. Orders without a coupon touch nothing."""
    await release_order(session, order_id=int(payload["order_id"]), user_id=int(payload["user_id"]))


# ---- internal endpoints -----------------------------------------------------------------------------------

def _terms(coupon: CouponRecord, discount: Decimal) -> dict[str, Any]:
    return {"code": coupon.code, "kind": coupon.kind, "value": str(coupon.value), "currency": coupon.currency,
            "min_subtotal": str(coupon.min_subtotal), "starts_at": coupon.starts_at.isoformat(),
            "ends_at": coupon.ends_at.isoformat() if coupon.ends_at else None, "discount": str(discount)}


def _order_amount(body: dict[str, Any]) -> tuple[Decimal, str]:
    try:
        subtotal = Decimal(str(body["subtotal"]))
        currency = str(body["currency"])
    except (KeyError, InvalidOperation, ValueError):
        raise BadUserInput("'subtotal' and 'currency' are required") from None
    if not subtotal.is_finite() or subtotal < 0 or subtotal > _MAX_AMOUNT or not _CURRENCY.fullmatch(currency):
        raise BadUserInput("'subtotal' must be a non-negative amount and 'currency' an ISO 4217 code")
    return subtotal.quantize(_CENT), currency


def _code(body: dict[str, Any]) -> str:
    code = body.get("code")
    if not isinstance(code, str):
        raise BadUserInput("'code' is required", field="code")
    return code


async def _quote_route(session: AsyncSession, caller: Principal | None, body: dict[str, Any]) -> dict[str, Any]:
    subtotal, currency = _order_amount(body)
    result = await quote(session, user_id=caller.user_id if caller else None, code=_code(body), subtotal=subtotal,
                         currency=currency)
    return _terms(result.coupon, result.discount)


async def _release_route(session: AsyncSession, caller: Principal | None, body: dict[str, Any]) -> dict[str, Any]:
    if caller is None:
        raise Unauthenticated()
    return {"released": await release_order(session, order_id=_order_id(body), user_id=caller.user_id)}


def _order_id(body: dict[str, Any]) -> int:
    try:
        order_id = int(body.get("order_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadUserInput("'order_id' must be an id") from None
    if not 0 < order_id < 1 << 63:
        raise BadUserInput("'order_id' must be an id")
    return order_id


async def _redeem_route(session: AsyncSession, caller: Principal | None, body: dict[str, Any]) -> dict[str, Any]:
    if caller is None:
        raise Unauthenticated()
    subtotal, currency = _order_amount(body)
    key, order_id = body.get("idempotency_key"), _order_id(body)
    if not isinstance(key, str) or not 1 <= len(key) <= 128:
        raise BadUserInput("'idempotency_key' must be 1..128 characters", field="idempotencyKey")
    result = await redeem(session, user_id=caller.user_id, code=_code(body), subtotal=subtotal, currency=currency,
                          idempotency_key=key, order_id=order_id)
    return {**_terms(result.coupon, result.discount), "order_id": str(result.order_id),
            "redemption_id": str(result.redemption_id), "replayed": result.replayed}


def _endpoint(work: Callable[[AsyncSession, Principal | None, dict[str, Any]], Awaitable[dict[str, Any]]]
              ) -> Callable[[Request], Awaitable[Response]]:
    """One transaction per call, committed only when `work` succeeded: an error changes nothing."""
    async def handle(request: Request) -> Response:
        resources: ServiceResources = request.app.state.resources
        # The same caller resolution as GraphQL requests: no header = anonymous, a bad token = 401.
        context = RequestContext(resources, request, request.headers.get("authorization"))
        try:
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise BadUserInput("The body must be a JSON object") from None
            if not isinstance(body, dict):
                raise BadUserInput("The body must be a JSON object")
            caller = context.user
            async with resources.session_factory() as session:
                result = await work(session, caller, body)
                await session.commit()
        except AppError as exc:
            return error_response(exc)
        return json_response(result)
    return handle


INTERNAL_ROUTES: list[Route] = [
    Route("/internal/coupons/quote", _endpoint(_quote_route), methods=["POST"]),
    Route("/internal/coupons/redeem", _endpoint(_redeem_route), methods=["POST"]),
    Route("/internal/coupons/release", _endpoint(_release_route), methods=["POST"]),
]
