"""The partners subgraph in process: ADMIN key management, what it publishes to Redis for the router, the
router's cache-miss endpoint, and the scope check every subgraph runs on a partner's operations
(kernel/graphql/scopes.py)."""
from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from kernel.auth import TokenIssuer
from kernel.settings import Settings
from tests.conftest import GraphQLClient, served_in_process

CREATE = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  secret apiKey { id name scopes persistedOnly rateLimitPerMinute revokedAt } } }"""
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }"
USAGE = "query($id: ID!, $days: Int) { apiKeyUsage(id: $id, days: $days) { date requests errors cost } }"


@pytest.fixture(scope="module")
async def partners(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, GraphQLClient]]:
    from subgraphs.partners.app import build_app
    app = build_app(settings)
    async with served_in_process(app, "http://partners") as http:
        yield http, GraphQLClient(http, "/graphql")


@pytest.fixture
def api(partners: tuple[httpx.AsyncClient, GraphQLClient]) -> GraphQLClient:
    return partners[1]


def key_input(**overrides: Any) -> dict[str, Any]:
    return {"name": "acme-shop", "scopes": ["catalog:read"], "persistedOnly": True, "rateLimitPerMinute": 60,
            **overrides}


async def test_created_key_is_published_to_redis_under_its_hash(api: GraphQLClient, token_for, redis) -> None:
    created = (await api.ok(CREATE, {"input": key_input(scopes=["orders:read", "catalog:read", "catalog:read"])},
                            token_for("ADMIN")))["createApiKey"]
    assert created["apiKey"]["scopes"] == ["catalog:read", "orders:read"]  # sorted, without duplicates
    digest = hashlib.sha256(created["secret"].encode()).hexdigest()
    record = orjson.loads(await redis.get(f"nexuscart:partners:key:{digest}"))
    assert record == {"id": created["apiKey"]["id"], "name": "acme-shop", "scopes": ["catalog:read", "orders:read"],
                      "persistedOnly": True, "rateLimitPerMinute": 60, "revoked": False}

    revoked = (await api.ok(REVOKE, {"id": created["apiKey"]["id"]}, token_for("ADMIN")))["revokeApiKey"]
    assert revoked["revokedAt"] is not None
    assert orjson.loads(await redis.get(f"nexuscart:partners:key:{digest}"))["revoked"] is True
    again = (await api.ok(REVOKE, {"id": created["apiKey"]["id"]}, token_for("ADMIN")))["revokeApiKey"]
    assert again["revokedAt"] == revoked["revokedAt"]  # the first revocation stands


@pytest.mark.parametrize("overrides", [
    {"name": "Acme Shop"}, {"name": "a"}, {"name": "../etc"}, {"scopes": ["everything"]},
    {"scopes": ["catalog:delete"]}, {"rateLimitPerMinute": 0}, {"rateLimitPerMinute": 100_001},
])
async def test_bad_input_is_refused_and_nothing_is_stored(api: GraphQLClient, token_for, overrides) -> None:
    body = await api.raw(CREATE, {"input": key_input(**overrides)}, token_for("ADMIN"))
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await api.ok("{ apiKeys { id } }", token=token_for("ADMIN")))["apiKeys"] == []


async def test_only_admins_manage_keys(api: GraphQLClient, token_for) -> None:
    assert await api.error_code(CREATE, {"input": key_input()}, token_for("CUSTOMER")) == "FORBIDDEN"
    assert await api.error_code(CREATE, {"input": key_input()}) == "UNAUTHENTICATED"
    assert await api.error_code("{ apiKeys { id } }", token=token_for("CUSTOMER")) == "FORBIDDEN"
    assert await api.error_code(REVOKE, {"id": "123"}, token_for("ADMIN")) == "NOT_FOUND"


async def test_usage_reads_the_routers_daily_counters(api: GraphQLClient, token_for, redis) -> None:
    created = (await api.ok(CREATE, {"input": key_input()}, token_for("ADMIN")))["createApiKey"]
    key_id = created["apiKey"]["id"]
    empty = (await api.ok(USAGE, {"id": key_id, "days": 3}, token_for("ADMIN")))["apiKeyUsage"]
    assert [(d["requests"], d["errors"], d["cost"]) for d in empty] == [(0, 0, 0)] * 3
    today = empty[-1]["date"]
    await redis.hset(f"nexuscart:partners:usage:{key_id}:{today}", mapping={"requests": 5, "errors": 1, "cost": 42})
    usage = (await api.ok(USAGE, {"id": key_id, "days": 1}, token_for("ADMIN")))["apiKeyUsage"]
    assert usage == [{"date": today, "requests": 5, "errors": 1, "cost": 42}]
    assert await api.error_code(USAGE, {"id": key_id, "days": 0}, token_for("ADMIN")) == "BAD_USER_INPUT"
    assert await api.error_code(USAGE, {"id": "99", "days": 1}, token_for("ADMIN")) == "NOT_FOUND"


async def test_cache_miss_endpoint_refills_redis(partners, api: GraphQLClient, token_for, redis) -> None:
    http, _ = partners
    created = (await api.ok(CREATE, {"input": key_input()}, token_for("ADMIN")))["createApiKey"]
    digest = hashlib.sha256(created["secret"].encode()).hexdigest()
    await redis.delete(f"nexuscart:partners:key:{digest}")
    answer = (await http.get(f"/internal/api-keys/{digest}")).json()
    assert answer["found"] is True and answer["key"]["id"] == created["apiKey"]["id"]
    assert await redis.get(f"nexuscart:partners:key:{digest}") is not None
    unknown = "0" * 64
    assert (await http.get(f"/internal/api-keys/{unknown}")).json() == {"found": False}
    assert orjson.loads(await redis.get(f"nexuscart:partners:key:{unknown}")) == {"unknown": True}
    assert (await http.get("/internal/api-keys/not-a-hash")).status_code == 400


async def test_subgraphs_check_a_partners_scopes(api: GraphQLClient, token_issuer: TokenIssuer,
                                                 token_for) -> None:
    admin = token_for("ADMIN")
    query = "{ apiKeys { id } }"
    granted = token_issuer.issue_partner("1", ["partners:read"])
    assert "errors" not in await api.raw(query, token=admin, headers={"x-nexuscart-partner": granted})
    refused = await api.raw(query, token=admin, headers={"x-nexuscart-partner": token_issuer.issue_partner(
        "1", ["catalog:read"])})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "partners:read" in refused["errors"][0]["message"]
    # A read scope does not grant mutations.
    write = await api.raw(CREATE, {"input": key_input()}, admin, headers={"x-nexuscart-partner": granted})
    assert write["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Only the platform's key signs partner credentials; a user's access token is not one either.
    for forged in ("forged", admin):
        body = await api.raw(query, token=admin, headers={"x-nexuscart-partner": forged})
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
