"""The serving side of internal HTTP (`/internal/...` endpoints other services call; the calling side is
kernel/internal_client.py). Every internal route is built by `internal_route`, so all of them:

- resolve the caller exactly as GraphQL requests do (no Authorization = anonymous, a bad token = 401);
- take a JSON object body (POST) and answer a JSON object, `cache-control: no-store`;
- run in one unit of work: committed when the handler returned, rolled back when it raised;
- answer an expected failure as `{code, message}` with the status of kernel.errors.HTTP_STATUS, which the
  client turns back into the same error and code. Anything else is a 500 the client reports as unavailable.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.errors import HTTP_STATUS, AppError, BadUserInput
from kernel.graphql.context import RequestContext, ServiceResources

InternalHandler = Callable[[RequestContext, dict[str, Any]], Awaitable[dict[str, Any]]]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


def error_response(exc: AppError) -> Response:
    return json_response({"code": exc.code.value, "message": exc.message}, HTTP_STATUS.get(exc.code, 400))


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadUserInput("The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadUserInput("The body must be a JSON object")
    return body


def internal_route(path: str, handler: InternalHandler, *, method: str = "POST") -> Route:
    """`handler(context, body)` gets the request's context (caller, lazy session, `context.request` for query
    and path parameters) and the JSON body ({} for GET); it returns the JSON object to answer with."""

    async def endpoint(request: Request) -> Response:
        resources: ServiceResources = request.app.state.resources
        context = RequestContext(resources, request, request.headers.get("authorization"))
        committed = False
        try:
            body = await _json_object(request) if method == "POST" else {}
            result = await handler(context, body)
            await context.finish(commit=True)
            committed = True
        except AppError as exc:
            return error_response(exc)
        finally:
            if not committed:
                await context.finish(commit=False)
        return json_response(result)

    return Route(path, endpoint, methods=[method])
