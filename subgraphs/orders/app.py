"""ASGI app of the orders subgraph, plus the internal endpoint promotions creates flash-sale orders through.

POST /internal/flash-sale-orders   (Authorization: Bearer <the buyer's token>)
  body {reservation_id, sale_id, user_id, variant_id, product_id, sku, name, quantity, unit_price, currency}
  200 {order_id, number, status, created}   idempotent per reservation_id
  400 / 401 / 403 {code, message}           malformed body; no or bad token; the token is not the buyer's
The same reservation also reaches orders as a `flashsale.purchased` event when the request path could not
create the order (the promotions reconciler), with the same outcome.
"""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.app import create_app
from kernel.errors import AppError, BadUserInput, Forbidden
from kernel.graphql import RequestContext, ServiceResources
from kernel.peers import error_response, json_response
from kernel.settings import Settings, get_settings
from subgraphs.orders import service
from subgraphs.orders.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.orders.schema import schema


async def create_flash_sale_order(request: Request) -> Response:
    resources: ServiceResources = request.app.state.resources
    context = RequestContext(resources, request, request.headers.get("authorization"))
    try:
        caller = context.require_user()
        try:
            reservation = service.FlashSaleReservationIn.from_payload(orjson.loads(await request.body()))
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            raise BadUserInput("malformed flash-sale reservation") from None
        if reservation.user_id != caller.user_id:
            raise Forbidden("The reservation belongs to another user")
        async with resources.session_factory() as session, session.begin():
            order, created = await service.create_flash_sale_order(session, resources.settings, reservation)
    except AppError as exc:
        return error_response(exc)
    return json_response({"order_id": str(order.id), "number": order.number, "status": order.status.value,
                          "created": created})


def build_app(settings: Settings | None = None, *, internal_http: PeerClient | None = None) -> Any:
    """The peers are found at `settings.cart_service_url` / `users_service_url`. The PeerClient opens its
    aiohttp session lazily inside the serving event loop; create_app closes it at shutdown (`aclose`)."""
    settings = settings or get_settings()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("orders", schema, extras={INTERNAL_HTTP: http}, settings=settings,
                      routes=[Route("/internal/flash-sale-orders", create_flash_sale_order, methods=["POST"])])
