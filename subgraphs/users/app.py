"""ASGI app of the users subgraph (also serves the JWKS other parties verify tokens with)."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kernel.app import create_app
from kernel.auth import TokenIssuer, TokenVerifier
from kernel.settings import Settings, get_settings
from subgraphs.users import internal
from subgraphs.users.schema import schema


def build_app(settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    verifier = TokenVerifier.from_settings(settings)

    async def jwks(_: Request) -> JSONResponse:
        return JSONResponse(verifier.jwks(), headers={"cache-control": "public, max-age=300"})

    return create_app("users", schema, extras={"issuer": TokenIssuer.from_settings(settings)}, settings=settings,
                      routes=[Route("/.well-known/jwks.json", jwks),
                              *internal.ROUTES])
