"""ASGI app of the users subgraph (also serves the JWKS other parties verify tokens with)."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kernel.app import create_app
from kernel.auth import TokenIssuer, TokenVerifier
from kernel.errors import AppError, ErrorCode, Unauthenticated
from kernel.graphql import ServiceResources
from kernel.settings import Settings, get_settings
from subgraphs.users import service
from subgraphs.users.errors import AddressNotFound
from subgraphs.users.schema import schema

_HTTP_STATUS = {ErrorCode.UNAUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403, ErrorCode.NOT_FOUND: 404,
                ErrorCode.CONFLICT: 409, ErrorCode.BAD_USER_INPUT: 400}


def _error_response(error: AppError) -> JSONResponse:
    return JSONResponse({"code": error.code.value, "message": error.message},
                        status_code=_HTTP_STATUS.get(error.code, 500))


async def internal_address(request: Request) -> JSONResponse:
    """`GET /internal/addresses/{id}` for orders' checkout (docs/commerce-spine.md): the caller's bearer token is
    forwarded, and only the address's owner gets it (403 for someone else's, 404 for an unknown id)."""
    resources: ServiceResources = request.app.state.resources
    try:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated()
        caller = resources.verifier.verify(token.strip())
        try:
            address_id = int(request.path_params["id"])
        except ValueError:
            raise AddressNotFound() from None
        if not 0 < address_id < 1 << 63:
            raise AddressNotFound()
        async with resources.session_factory() as session:
            row = await service.get_address_for_checkout(session, caller.user_id, address_id)
    except AppError as error:
        return _error_response(error)
    return JSONResponse({"id": str(row.id), "user_id": str(row.user_id), "line1": row.line1, "line2": row.line2,
                         "city": row.city, "region": row.region, "postal_code": row.postal_code,
                         "country": row.country})


def build_app(settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    verifier = TokenVerifier.from_settings(settings)

    async def jwks(_: Request) -> JSONResponse:
        return JSONResponse(verifier.jwks(), headers={"cache-control": "public, max-age=300"})

    return create_app("users", schema, extras={"issuer": TokenIssuer.from_settings(settings)}, settings=settings,
                      routes=[Route("/.well-known/jwks.json", jwks),
                              Route("/internal/addresses/{id}", internal_address)])
