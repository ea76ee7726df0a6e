"""/health and /metrics for the worker processes (relay, saga worker), which serve no GraphQL."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Returns (healthy, details): details are shown in the /health body.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def health_app(service: str, check: HealthCheck) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        healthy, details = check()
        return JSONResponse({"status": "ok" if healthy else "unhealthy", "service": service, **details},
                            status_code=200 if healthy else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/health", health), Route("/metrics", metrics)])


async def serve_health(service: str, port: int, check: HealthCheck) -> None:
    config = uvicorn.Config(health_app(service, check), host="0.0.0.0", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    await uvicorn.Server(config).serve()
