"""Users' internal endpoint (kernel/internal_server.py gives it its caller, transaction and error answers).

GET /internal/addresses/{id}  (Authorization: the caller's bearer token, forwarded by orders at checkout)
  200 {id, user_id, line1, line2, city, region, postal_code, country}   only the address's owner gets it
  401 no or bad token; 403 someone else's address; 404 an unknown id
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from kernel.graphql import RequestContext
from kernel.ids import as_id
from kernel.internal_server import internal_route
from subgraphs.users import service
from subgraphs.users.errors import AddressNotFound


async def _address(ctx: RequestContext, _body: dict[str, Any]) -> dict[str, Any]:
    caller = ctx.require_user()
    assert ctx.request is not None
    address_id = as_id(ctx.request.path_params["id"])
    if address_id is None:
        raise AddressNotFound()
    row = await service.get_address_for_checkout(await ctx.session(), caller.user_id, address_id)
    return {"id": str(row.id), "user_id": str(row.user_id), "line1": row.line1, "line2": row.line2,
            "city": row.city, "region": row.region, "postal_code": row.postal_code, "country": row.country}


ROUTES: list[Route] = [internal_route("/internal/addresses/{id}", _address, method="GET")]
