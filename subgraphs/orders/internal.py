"""Orders' internal endpoint (kernel/internal_server.py gives it its caller, transaction and error answers).

POST /internal/flash-sale-orders   (Authorization: Bearer <the buyer's token>)
  body {reservation_id, sale_id, user_id, variant_id, product_id, sku, name, quantity, unit_price, currency}
  200 {order_id, number, status, created}   idempotent per reservation_id
  400 / 401 / 403 {code, message}           malformed body; no or bad token; the token is not the buyer's
The same reservation also reaches orders as a `flashsale.purchased` event when the request path could not
create the order (the promotions reconciler), with the same outcome.
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from kernel.errors import BadUserInput, Forbidden
from kernel.graphql import RequestContext
from kernel.internal_server import internal_route
from subgraphs.orders import service


async def _create_flash_sale_order(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    caller = ctx.require_user()
    try:
        reservation = service.flash_sale_reservation(body)
    except (ValueError, KeyError, TypeError):
        raise BadUserInput("malformed flash-sale reservation") from None
    if reservation.user_id != caller.user_id:
        raise Forbidden("The reservation belongs to another user")
    order, created = await service.create_flash_sale_order(await ctx.session(), ctx.settings, reservation)
    return {"order_id": str(order.id), "number": order.number, "status": order.status.value, "created": created}


ROUTES: list[Route] = [internal_route("/internal/flash-sale-orders", _create_flash_sale_order)]
