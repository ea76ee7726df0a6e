"""Inventory's internal endpoint (kernel/internal_server.py gives it its caller, transaction and error answers).

POST /internal/reservations   (orders, at placeOrder; Authorization: Bearer <the buyer's token>)
  body {order_id, items: [{variant_id, quantity}]}
  200 {outcome: RESERVED | OUT_OF_STOCK | CANCELLED, short_variant_ids: [...], duplicate}
  400 / 401 {code, message}     malformed body; no or bad token

The same decision the `inventory` consumer makes on order.placed (service.reserve_for_order), taken while the
shopper waits: all lines or none, and the first decision about an order is final, so whichever of this call and
the order.placed event comes second changes nothing and is answered with the recorded outcome. It announces
nothing (no inventory.reserved / out_of_stock event): orders moves the order on with the answer it gets here.
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from kernel.errors import BadUserInput
from kernel.graphql import RequestContext
from kernel.internal_server import internal_route
from subgraphs.inventory import cache, service

MAX_LINES = 500  # an order's lines; a body beyond that is not an order


def _order_lines(body: dict[str, Any]) -> tuple[int, list[tuple[int, int]]]:
    try:
        order_id = int(body["order_id"])
        items = body["items"]
        if not isinstance(items, list) or not 0 < len(items) <= MAX_LINES or order_id <= 0:
            raise ValueError("no lines")
        lines = [(int(item["variant_id"]), item["quantity"]) for item in items]
    except (KeyError, TypeError, ValueError):
        raise BadUserInput("expected {order_id, items: [{variant_id, quantity}]}") from None
    return order_id, lines


async def _reserve(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    ctx.require_user()
    order_id, lines = _order_lines(body)
    session = await ctx.session()
    try:
        result = await service.reserve_for_order(session, order_id, lines, announce=False)
    except service.InvalidOrderLine as exc:
        raise BadUserInput(str(exc)) from None
    if not result.duplicate and result.reserved:
        cache.GENERATION.bump_after_commit(session, ctx.redis)  # available stock changed: cached reads are stale
    return {"outcome": result.outcome, "short_variant_ids": [str(v) for v in result.short_variant_ids],
            "duplicate": result.duplicate}


ROUTES: list[Route] = [internal_route("/internal/reservations", _reserve)]
