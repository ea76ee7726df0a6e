"""ASGI app of the cart subgraph, plus the internal checkout snapshot orders reads at placeOrder.

GET /internal/checkout?cart_id=<id or empty>  (Authorization: Bearer <the caller's token>)
  200 {cart_id, user_id, items: [{item_id, variant_id, product_id, sku, name, quantity, unit_price, currency}],
       subtotal, currency, coupon_code}  ids and money are strings, quantity an integer; user_id null for a guest
                                         cart; coupon_code the applied coupon's code or null
  401 / 403 / 404 / 409 {code, message}  same access rules as the GraphQL API; 409 CONFLICT when a line's
                                         variant is no longer sold (or the lines mix currencies)
It is on the placeOrder hot path: one token check in-process, one Lua script call, no Postgres.
"""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.app import create_app
from kernel.errors import AppError, ErrorCode
from kernel.graphql import RequestContext, ServiceResources
from kernel.settings import Settings, get_settings
from subgraphs.cart import service
from subgraphs.cart.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.cart.schema import schema

_STATUS = {ErrorCode.BAD_USER_INPUT: 400, ErrorCode.UNAUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403,
           ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


async def checkout(request: Request) -> Response:
    resources: ServiceResources = request.app.state.resources
    # The same caller resolution as GraphQL requests: no header = anonymous, a bad token = 401.
    context = RequestContext(resources, request, request.headers.get("authorization"))
    try:
        cart = await service.checkout_snapshot(resources.redis, caller=context.user,
                                               cart_id=request.query_params.get("cart_id") or None)
    except AppError as exc:
        return _json({"code": exc.code.value, "message": exc.message}, _STATUS.get(exc.code, 400))
    return _json(service.checkout_payload(cart))


def build_app(settings: Settings | None = None, *, internal_http: PeerClient | None = None) -> Any:
    """applyCoupon asks promotions (`settings.promotions_service_url`) through one pooled PeerClient."""
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("cart", schema, settings=settings, extras={INTERNAL_HTTP: http},
                      routes=[Route("/internal/checkout", checkout, methods=["GET"])])
