"""Strawberry's ASGI view with the kernel's per-request context and orjson encoding."""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from kernel.graphql.context import CALLER_ONLY, RequestContext, ServiceResources
from kernel.graphql.schema import NexusSchema


class GraphQLEndpoint(GraphQL[RequestContext, None]):
    """Strawberry's ASGI view with our context and orjson encoding."""

    def __init__(self, schema: NexusSchema, resources: ServiceResources, **kwargs: Any) -> None:
        super().__init__(schema, **kwargs)
        self.resources = resources

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> RequestContext:
        authorization = request.headers.get("authorization")
        client_ip = request.headers.get("x-forwarded-for", "").split(",")[0].strip() or (
            request.client.host if request.client else None)
        context = RequestContext(self.resources, request, authorization, client_ip)
        if isinstance(response, Response):
            # Every HTTP answer says who may keep it; only the response cache extension, having checked the
            # answer is the same for every caller, widens it (RequestContext.mark_shared).
            response.headers["cache-control"] = CALLER_ONLY
            context.http_response = response
        return context

    def decode_json(self, data: str | bytes) -> object:
        # orjson bounds nesting depth (a JSONDecodeError, answered 400) where json.loads would raise
        # RecursionError out of the app as a bare 500.
        decoded = orjson.loads(data)
        # graphql-transport-ws lets `connection_init` omit its payload; some gateways send `"payload": null`
        # instead (Grafbase, for its SSE clients), which Strawberry refuses with 4400. Both mean no parameters.
        if type(decoded) is dict and decoded.get("type") == "connection_init" and decoded.get("payload", 0) is None:
            decoded["payload"] = {}
        return decoded

    def encode_json(self, data: object) -> str:
        # Text, not bytes: Strawberry sends bytes as binary WebSocket frames, which graphql-transport-ws
        # clients (the router among them) reject.
        return orjson.dumps(data).decode()
