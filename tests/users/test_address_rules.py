"""The address book applies the kernel's postal-address rules (kernel/address.py), exactly as orders' shipping
address does: every part bounded, trimmed, the country an ISO 3166 alpha-2 code; a refusal stores nothing."""
from __future__ import annotations

import pytest

ADD_ADDRESS = """mutation($input: AddressInput!) { addAddress(input: $input) {
  id line1 line2 city region postalCode country } }"""
UPDATE_ADDRESS = """mutation($id: ID!, $input: AddressInput!) { updateAddress(id: $id, input: $input) {
  id line2 region } }"""
HOME = {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}


async def stored(db_admin) -> list[tuple]:
    rows = await db_admin.fetch("SELECT line1, line2, city, region, postal_code, country FROM users.addresses "
                                "ORDER BY id")
    return [tuple(r) for r in rows]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"line2": "x" * 201}, "line2"),
    ({"region": "x" * 201}, "region"),
    ({"line1": "x" * 201}, "line1"),
    ({"postalCode": "   "}, "postalCode"),
    ({"country": "U"}, "country"),
])
async def test_an_address_part_out_of_bounds_is_bad_user_input_and_nothing_is_stored(
        users_api, make_user, db_admin, overrides, field) -> None:
    _, token = await make_user()
    body = await users_api.raw(ADD_ADDRESS, {"input": {**HOME, **overrides}}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert field in body["errors"][0]["message"]
    assert await stored(db_admin) == []


async def test_an_update_with_an_overlong_line2_changes_nothing(users_api, make_user, db_admin) -> None:
    _, token = await make_user()
    address = (await users_api.ok(ADD_ADDRESS, {"input": {**HOME, "line2": "Flat 2"}}, token=token))["addAddress"]
    before = await stored(db_admin)
    body = await users_api.raw(UPDATE_ADDRESS, {"id": address["id"], "input": {**HOME, "line2": "y" * 201}},
                               token=token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert await stored(db_admin) == before


async def test_parts_are_trimmed_and_at_most_200_characters_is_kept_whole(users_api, make_user, db_admin) -> None:
    _, token = await make_user()
    address = (await users_api.ok(ADD_ADDRESS, {"input": {
        "line1": " 1 Main St ", "line2": "  ", "city": "Springfield ", "region": "r" * 200,
        "postalCode": " 12345", "country": " gb "}}, token=token))["addAddress"]
    assert (address["line1"], address["line2"], address["city"], address["region"], address["postalCode"],
            address["country"]) == ("1 Main St", None, "Springfield", "r" * 200, "12345", "GB")
    assert await stored(db_admin) == [("1 Main St", None, "Springfield", "r" * 200, "12345", "GB")]
