"""Shipping's internal endpoint (kernel/internal_server.py gives it its caller, transaction and error answers).

POST /internal/shipping/quote   (orders, at placeOrder)
  body {address: {line1, line2, city, region, postal_code, country}, currency, subtotal,
        items: [{variant_id, product_id, quantity, line_total}], method_id | null}
  200 {applies: false}                                         no zone covers the address: no shipping charged
  200 {applies: true, method_id, name, carrier, price, currency}   method_id null: the cheapest offered method
  400 {code: BAD_USER_INPUT, message}                          the method is unknown or not offered for this
                                                               address and cart, or no method is
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from kernel.graphql import RequestContext
from kernel.internal_server import internal_route
from subgraphs.shipping import service


async def _quote(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    return await service.quote(await ctx.session(), ctx.settings, body)


ROUTES: list[Route] = [internal_route("/internal/shipping/quote", _quote)]
