"""Every subgraph answer says whether the router may share it (Cache-Control): only what the subgraph's response
cache holds for every caller is `public`; anything else, by default, is the caller's alone."""
from __future__ import annotations

from kernel.graphql.context import CALLER_ONLY, SHARED


async def _cache_control(api, query: str, variables=None, token: str | None = None) -> str | None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await api.http.post(api.url, json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    return response.headers.get("cache-control")


async def test_a_public_query_is_shared_on_a_miss_and_on_a_hit(catalog_api, token_for) -> None:
    query = "{ categories { id name } }"
    assert await _cache_control(catalog_api, query) == SHARED  # executed and stored
    assert await _cache_control(catalog_api, query) == SHARED  # served from the subgraph's cache
    assert await _cache_control(catalog_api, query, token=token_for("CUSTOMER")) == SHARED  # nothing read the caller


async def test_a_callers_own_data_an_error_or_a_mutation_is_never_shared(catalog_api, users_api, token_for) -> None:
    assert await _cache_control(users_api, "{ me { id } }", token=token_for("CUSTOMER")) == CALLER_ONLY
    # users caches only `_entities`: any other root field is not known to be public
    assert await _cache_control(users_api, "{ me { id } }") == CALLER_ONLY
    refused = '{ product(id: "1", slug: "both") { id } }'  # exactly one of id and slug
    assert (await catalog_api.raw(refused))["errors"]
    assert await _cache_control(catalog_api, refused) == CALLER_ONLY
    mutation = 'mutation { createCategory(input: {name: "Never shared"}) { id } }'
    assert await _cache_control(catalog_api, mutation, token=token_for("ADMIN")) == CALLER_ONLY


async def test_typename_at_the_root_keeps_an_allowlisted_operation_shared(users_api) -> None:
    # The router's response cache adds `__typename` everywhere, the root included; users caches `_entities` only.
    query = ('query($r: [_Any!]!) { __typename _entities(representations: $r) { __typename ... on User { id } } }')
    assert await _cache_control(users_api, query, {"r": [{"__typename": "User", "id": "1"}]}) == SHARED
