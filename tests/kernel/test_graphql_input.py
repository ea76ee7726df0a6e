"""Input every subgraph refuses the same way, before any resolver or SQL runs."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("query,variables", [
    ('query($b: String) { products(filter: {brand: $b}) { totalCount } }', {"b": "a\u0000b"}),
    ('query($s: String) { product(slug: $s) { id } }', {"s": "a\u0000b"}),
    ('{ product(slug: "a\\u0000b") { id } }', None),
])
async def test_nul_characters_are_bad_user_input_in_catalog(catalog_api, query, variables) -> None:  # noqa: ANN001
    assert await catalog_api.error_code(query, variables) == "BAD_USER_INPUT"


async def test_nul_characters_are_bad_user_input_in_users_and_nothing_is_written(users_api, db_admin) -> None:  # noqa: ANN001
    register = 'mutation($i: RegisterInput!) { register(input: $i) { accessToken } }'
    variables = {"i": {"email": "nul@example.com", "password": "long-enough-pass-1", "firstName": "a\u0000b"}}
    assert await users_api.error_code(register, variables) == "BAD_USER_INPUT"
    assert await db_admin.fetchval("SELECT count(*) FROM users.users") == 0


async def test_malformed_documents_get_graphql_codes(catalog_api) -> None:  # noqa: ANN001
    assert await catalog_api.error_code("{ products(first: 5) { edges ") == "GRAPHQL_PARSE_FAILED"
    assert await catalog_api.error_code("{ products { noSuchField } }") == "GRAPHQL_VALIDATION_FAILED"
    assert await catalog_api.error_code('query($n: Int) { products(first: $n) { totalCount } }',
                                        {"n": "twenty"}) == "BAD_USER_INPUT"
