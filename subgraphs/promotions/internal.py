"""Promotions' internal endpoints: what the cart and orders ask of coupons (kernel/internal_server.py
gives every route its caller, its transaction and its error answers).

Internal endpoints (Authorization: the caller's bearer token, forwarded; bodies and answers are JSON, money a
decimal string, errors `{code, message}` with 400/401/403/409 as kernel.internal_client maps them back):
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

from decimal import Decimal
from typing import Any

from starlette.routing import Route

from kernel.errors import BadUserInput
from kernel.graphql import RequestContext
from kernel.ids import parse_id
from kernel.internal_server import internal_route
from kernel.money import check_currency, parse_amount
from subgraphs.promotions import coupons
from subgraphs.promotions.coupon_repository import CouponRecord


def _terms(coupon: CouponRecord, discount: Decimal) -> dict[str, Any]:
    return {"code": coupon.code, "kind": coupon.kind, "value": str(coupon.value), "currency": coupon.currency,
            "min_subtotal": str(coupon.min_subtotal), "starts_at": coupon.starts_at.isoformat(),
            "ends_at": coupon.ends_at.isoformat() if coupon.ends_at else None, "discount": str(discount)}


def _order_amount(body: dict[str, Any]) -> tuple[Decimal, str]:
    return parse_amount(body.get("subtotal"), field="subtotal"), check_currency(body.get("currency"))


def _code(body: dict[str, Any]) -> str:
    code = body.get("code")
    if not isinstance(code, str):
        raise BadUserInput("'code' is required", field="code")
    return code


async def _quote(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    caller = ctx.user
    subtotal, currency = _order_amount(body)
    result = await coupons.quote(await ctx.session(), user_id=caller.user_id if caller else None, code=_code(body),
                                 subtotal=subtotal, currency=currency)
    return _terms(result.coupon, result.discount)


async def _release(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    caller = ctx.require_user()
    released = await coupons.release_order(await ctx.session(), order_id=_order_id(body), user_id=caller.user_id)
    return {"released": released}


def _order_id(body: dict[str, Any]) -> int:
    return parse_id(body.get("order_id"), field="order_id")


async def _redeem(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    caller = ctx.require_user()
    subtotal, currency = _order_amount(body)
    key, order_id = body.get("idempotency_key"), _order_id(body)
    if not isinstance(key, str) or not 1 <= len(key) <= 128:
        raise BadUserInput("'idempotency_key' must be 1..128 characters", field="idempotencyKey")
    result = await coupons.redeem(await ctx.session(), user_id=caller.user_id, code=_code(body), subtotal=subtotal,
                                  currency=currency, idempotency_key=key, order_id=order_id)
    return {**_terms(result.coupon, result.discount), "order_id": str(result.order_id),
            "redemption_id": str(result.redemption_id), "replayed": result.replayed}


ROUTES: list[Route] = [
    internal_route("/internal/coupons/quote", _quote),
    internal_route("/internal/coupons/redeem", _redeem),
    internal_route("/internal/coupons/release", _release),
]
