"""Input every subgraph refuses the same way, before any resolver or SQL runs."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize(("query", "variables"), [
    ('query($b: String) { products(filter: {brand: $b}) { totalCount } }', {"b": "a\u0000b"}),
    ('query($s: String) { product(slug: $s) { id } }', {"s": "a\u0000b"}),
    ('{ product(slug: "a\\u0000b") { id } }', None),
])
async def test_nul_characters_are_bad_user_input_in_catalog(catalog_api, query, variables) -> None:
    assert await catalog_api.error_code(query, variables) == "BAD_USER_INPUT"


async def test_nul_characters_are_bad_user_input_in_users_and_nothing_is_written(users_api, db_admin) -> None:
    register = 'mutation($i: RegisterInput!) { register(input: $i) { accessToken } }'
    variables = {"i": {"email": "nul@example.com", "password": "long-enough-pass-1", "firstName": "a\u0000b"}}
    assert await users_api.error_code(register, variables) == "BAD_USER_INPUT"
    assert await db_admin.fetchval("SELECT count(*) FROM users.users") == 0


async def test_malformed_documents_get_graphql_codes(catalog_api) -> None:
    assert await catalog_api.error_code("{ products(first: 5) { edges ") == "GRAPHQL_PARSE_FAILED"
    assert await catalog_api.error_code("{ products { noSuchField } }") == "GRAPHQL_VALIDATION_FAILED"
    assert await catalog_api.error_code('query($n: Int) { products(first: $n) { totalCount } }',
                                        {"n": "twenty"}) == "BAD_USER_INPUT"


async def test_graphql_escapes_and_surrogates_cannot_smuggle_unstorable_text(catalog_api) -> None:
    assert await catalog_api.error_code('{ product(slug: "a\\u{0}b") { id } }') == "BAD_USER_INPUT"
    response = await catalog_api.http.post("/graphql", content=b'{"query": "query($s: String) { product(slug: $s) '
                                           b'{ id } }", "variables": {"s": "x\\udc00"}}',
                                           headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_absurdly_nested_json_body_is_a_client_error_not_a_crash(catalog_api) -> None:
    body = b'{"query": "{ categories { id } }", "variables": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    response = await catalog_api.http.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400


async def test_unkeyable_variables_skip_the_response_cache_instead_of_failing(catalog_api) -> None:
    # A representation nested deeper than orjson will encode cannot key the cache: answered uncached.
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    query = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id } } }'
    body = await catalog_api.raw(query, {"r": [{"__typename": "Product", "id": "1", "junk": deep}]})
    assert "INTERNAL_SERVER_ERROR" not in str(body) and "64-bit" not in str(body), body
