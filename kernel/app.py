"""The ASGI app every subgraph runs: /graphql, /health, /metrics, correlation ids and JSON logs."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from kernel import ids
from kernel.auth import TokenVerifier
from kernel.db import create_engine, create_session_factory
from kernel.graphql import GraphQLEndpoint, NexusSchema, ServiceResources
from kernel.internal_client import PeerClient
from kernel.logs import configure_logging, correlation_id_var
from kernel.process import die_with_parent_if_asked
from kernel.redis import create_redis
from kernel.settings import Settings, get_settings
from kernel.tracing import TracingMiddleware, setup_tracing

REQUESTS = Counter("nexuscart_http_requests_total", "HTTP requests", ["service", "path", "status"])
LATENCY = Histogram("nexuscart_http_request_seconds", "HTTP request latency", ["service", "path"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


class CorrelationMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): correlation id in, out and in every log line."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        correlation_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                correlation_id = value.decode("latin-1")[:128]
                break
        correlation_id = correlation_id or uuid.uuid4().hex
        token = correlation_id_var.set(correlation_id)
        path = scope.get("path", "")
        started = time.perf_counter()
        status_holder = {"status": 0}

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", correlation_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                LATENCY.labels(self.service, path).observe(time.perf_counter() - started)
                REQUESTS.labels(self.service, path, str(status_holder["status"])).inc()
            correlation_id_var.reset(token)


def create_app(service: str, schema: NexusSchema, *, extras: dict[str, Any] | None = None,
               routes: Sequence[BaseRoute] = (), settings: Settings | None = None) -> Any:
    settings = (settings or get_settings()).model_copy(update={"service_name": service})
    # Each uvicorn worker process builds its app here: started by the launcher, it ends with its parent too.
    die_with_parent_if_asked()
    configure_logging(service, settings.log_level)
    settings.require_peers("database_url", "redis_url")

    engine = create_engine(settings)
    resources = ServiceResources(settings=settings, session_factory=create_session_factory(engine),
                                 redis=create_redis(settings), verifier=TokenVerifier.from_settings(settings),
                                 peers=PeerClient(settings.internal_http_timeout_seconds),
                                 extras=dict(extras or {}))
    graphql_app = GraphQLEndpoint(schema, resources, graphql_ide="graphiql",
                                  subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
                                  max_subscriptions_per_connection=settings.subscriptions_per_connection)

    async def health(_: Request) -> Response:
        """Liveness: the process answers. A database or Redis outage is not cured by restarting us."""
        return JSONResponse({"status": "ok", "service": service})

    async def ready(_: Request) -> Response:
        """Readiness: Postgres and Redis answer, so requests can be served."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2), resources.session_factory() as session:
                await session.execute(text("SELECT 1"))
            checks["postgres"] = "ok"
        except Exception:  # noqa: BLE001 - readiness reports, never raises
            checks["postgres"] = "down"
        try:
            async with asyncio.timeout(2):
                await resources.redis.ping()
            checks["redis"] = "ok"
        except Exception:  # noqa: BLE001 - readiness reports, never raises
            checks["redis"] = "down"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "degraded", "service": service, "checks": checks},
                            status_code=200 if healthy else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Every process needs its own Snowflake node id: leased from Redis, so uvicorn workers and replicas
        # never collide without anyone assigning NODE_ID by hand.
        _node_id, lease_key = await ids.claim_node_id(resources.redis)
        renewal = asyncio.create_task(ids.renew_node_lease(resources.redis, lease_key))
        yield
        renewal.cancel()
        await resources.redis.delete(lease_key)
        await resources.aclose()

    app = Starlette(
        routes=[Route("/graphql", graphql_app, methods=["GET", "POST"]),
                WebSocketRoute("/graphql", graphql_app),
                Route("/health", health), Route("/ready", ready), Route("/metrics", metrics), *routes],
        lifespan=lifespan,
    )
    app.state.resources = resources
    # Spans only when OTEL_EXPORTER_OTLP_ENDPOINT is set: otherwise the middleware is not even in the chain.
    traced = TracingMiddleware(app) if setup_tracing(service, settings) else app
    return CorrelationMiddleware(traced, service)
