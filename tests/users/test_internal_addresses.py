"""`GET /internal/addresses/{id}`: the saved address orders asks for at checkout (docs/commerce-spine.md)."""
from __future__ import annotations

ADD_ADDRESS = "mutation($input: AddressInput!) { addAddress(input: $input) { id } }"
ADDRESS = {"line1": "1 Analytical Way", "line2": "Flat 2", "city": "London", "postalCode": "N1 9GU",
           "country": "gb"}


async def get(users_api, path: str, token: str | None = None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await users_api.http.get(path, headers=headers)


async def test_the_owner_gets_the_address_in_the_contract_shape(users_api, make_user) -> None:
    user_id, token = await make_user()
    address_id = (await users_api.ok(ADD_ADDRESS, {"input": ADDRESS}, token=token))["addAddress"]["id"]
    response = await get(users_api, f"/internal/addresses/{address_id}", token)
    assert response.status_code == 200
    assert response.json() == {"id": address_id, "user_id": str(user_id), "line1": "1 Analytical Way",
                               "line2": "Flat 2", "city": "London", "region": None, "postal_code": "N1 9GU",
                               "country": "GB"}


async def test_someone_elses_unknown_or_anonymous_is_refused_with_a_code(users_api, make_user) -> None:
    _, owner = await make_user()
    _, other = await make_user()
    address_id = (await users_api.ok(ADD_ADDRESS, {"input": ADDRESS}, token=owner))["addAddress"]["id"]
    cases = [(other, f"/internal/addresses/{address_id}", 403, "FORBIDDEN"),
             (owner, "/internal/addresses/123456789", 404, "NOT_FOUND"),
             (owner, "/internal/addresses/not-an-id", 404, "NOT_FOUND"),
             (owner, f"/internal/addresses/{1 << 70}", 404, "NOT_FOUND"),
             (None, f"/internal/addresses/{address_id}", 401, "UNAUTHENTICATED"),
             ("forged.token.value", f"/internal/addresses/{address_id}", 401, "UNAUTHENTICATED")]
    for token, path, status, code in cases:
        response = await get(users_api, path, token)
        assert (response.status_code, response.json()["code"]) == (status, code), path
        assert "line1" not in response.text
