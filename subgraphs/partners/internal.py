"""Partners' internal endpoint: the router's fallback when a key's record is missing from Redis.

  GET /internal/api-keys/{secret_hash}   -> 200 {found: false} or {found: true, key: {id, name, scopes,
        persistedOnly, rateLimitPerMinute, revoked}}; the record is (re)written to Redis either way
        (key_store.py), so the next request finds it there.
"""
from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.routing import Route

from kernel.errors import BadUserInput
from kernel.graphql import RequestContext
from kernel.internal_server import internal_route
from subgraphs.partners import key_store, service

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


async def _key_by_hash(ctx: RequestContext, _body: dict[str, Any]) -> dict[str, Any]:
    assert ctx.request is not None  # an HTTP route always has its request
    secret_hash = ctx.request.path_params["secret_hash"]
    if not _SHA256_HEX.match(secret_hash):
        raise BadUserInput("the path ends with the lower-case hex SHA-256 of the key", field="secret_hash")
    key = await service.refresh_cached_key(await ctx.session(), ctx.redis, secret_hash)
    if key is None:
        return {"found": False}
    return {"found": True, "key": orjson.loads(key_store.record_json(key))}


ROUTES: list[Route] = [
    internal_route("/internal/api-keys/{secret_hash}", _key_by_hash, method="GET"),
]
