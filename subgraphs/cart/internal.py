"""The cart's internal endpoint (kernel/internal_server.py gives it its caller, transaction and error answers).

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

from starlette.routing import Route

from kernel.graphql import RequestContext
from kernel.internal_server import internal_route
from subgraphs.cart import service


async def _checkout(ctx: RequestContext, _body: dict[str, Any]) -> dict[str, Any]:
    assert ctx.request is not None
    cart = await service.checkout_snapshot(ctx.redis, caller=ctx.user,
                                           cart_id=ctx.request.query_params.get("cart_id") or None)
    return service.checkout_payload(cart)


ROUTES: list[Route] = [internal_route("/internal/checkout", _checkout, method="GET")]
