"""/health, /ready and /metrics for the worker processes (relay, saga worker), which serve no GraphQL.

/health is liveness (restart me if it fails): the process's loops are still running. /ready is readiness (send me
work, count me as started): for the saga worker, every consumer group joined with its partitions assigned.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Returns (healthy, details): details are shown in the response body.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def _endpoint(service: str, check: HealthCheck, failed: str) -> Callable[[Request], Any]:
    async def endpoint(_: Request) -> JSONResponse:
        ok, details = check()
        return JSONResponse({"status": "ok" if ok else failed, "service": service, **details},
                            status_code=200 if ok else 503)
    return endpoint


def health_app(service: str, check: HealthCheck, ready: HealthCheck | None = None) -> Starlette:
    """`ready` defaults to `check`: a process with nothing to wait for is ready once it is alive."""
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/health", _endpoint(service, check, "unhealthy")),
                             Route("/ready", _endpoint(service, ready or check, "not ready")),
                             Route("/metrics", metrics)])


async def serve_health(service: str, port: int, check: HealthCheck, ready: HealthCheck | None = None) -> None:
    config = uvicorn.Config(health_app(service, check, ready), host="0.0.0.0", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    await _EmbeddedServer(config).serve()


class _EmbeddedServer(uvicorn.Server):
    """A server inside a process whose own signal handlers decide when it stops: uvicorn would otherwise take
    SIGINT/SIGTERM for itself and pass them on only once it has shut down. The caller cancels its task."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
