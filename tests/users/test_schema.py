"""The users subgraph through its GraphQL API (in-process ASGI, real Postgres and Redis)."""
from __future__ import annotations

import asyncio
import uuid

import pytest

REGISTER = """mutation($input: RegisterInput!) { register(input: $input) {
  accessToken refreshToken expiresIn user { id email firstName lastName roles } } }"""
LOGIN = """mutation($e: String!, $p: String!) {
  login(email: $e, password: $p) { accessToken refreshToken user { id } } }"""
REFRESH = """mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }"""
ME = "{ me { id email roles addresses { id isDefaultShipping } } }"
ADD_ADDRESS = """mutation($input: AddressInput!) { addAddress(input: $input) {
  id isDefaultShipping isDefaultBilling country } }"""


def registration(email: str = "ada@example.com", password: str = "analytical-engine-1843") -> dict:
    return {"input": {"email": email, "password": password, "firstName": "Ada", "lastName": "Lovelace"}}


async def count_users(db_admin) -> int:
    return await db_admin.fetchval("SELECT count(*) FROM users.users")


async def test_register_then_login_then_me(users_api, db_admin) -> None:
    registered = (await users_api.ok(REGISTER, registration()))["register"]
    assert registered["user"]["email"] == "ada@example.com"
    assert registered["user"]["roles"] == ["CUSTOMER"]
    assert registered["expiresIn"] == 900

    login = (await users_api.ok(LOGIN, {"e": "ADA@example.com", "p": "analytical-engine-1843"}))["login"]
    me = (await users_api.ok(ME, token=login["accessToken"]))["me"]
    assert me["id"] == registered["user"]["id"]
    # user.registered was written to the outbox in the same transaction as the user
    topics = [r["topic"] for r in await db_admin.fetch("SELECT topic FROM users.outbox")]
    assert topics == ["user.registered"]


async def test_me_is_null_without_token_and_unauthenticated_with_a_forged_one(users_api, make_user) -> None:
    assert (await users_api.ok(ME))["me"] is None
    _, token = await make_user()
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    assert await users_api.error_code(ME, token=forged) == "UNAUTHENTICATED"
    assert await users_api.error_code(ME, token="not-a-jwt") == "UNAUTHENTICATED"


async def test_expired_token_is_unauthenticated(users_api, make_user, token_issuer) -> None:
    user_id, _ = await make_user()
    expired = token_issuer.issue(user_id, ["CUSTOMER"], ttl_seconds=-10)
    body = await users_api.raw(ME, token=expired)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "Access token expired"


@pytest.mark.parametrize(("email", "password", "code"), [
    ("ada@example.com", "short1", "BAD_USER_INPUT"),
    ("ada@example.com", "onlylowercaseletters", "BAD_USER_INPUT"),
    ("not-an-email", "analytical-engine-1843", "BAD_USER_INPUT"),
    ("ada@@example..com", "analytical-engine-1843", "BAD_USER_INPUT"),
])
async def test_bad_registrations_are_refused_and_write_nothing(users_api, db_admin, email, password, code) -> None:
    body = await users_api.raw(REGISTER, registration(email, password))
    assert body["errors"][0]["extensions"]["code"] == code
    assert "Traceback" not in str(body) and "SELECT" not in str(body)
    assert await count_users(db_admin) == 0


async def test_duplicate_email_is_conflict_even_when_concurrent(users_api, db_admin) -> None:
    results = await asyncio.gather(*(users_api.raw(REGISTER, registration("same@example.com")) for _ in range(4)))
    codes = sorted(r["errors"][0]["extensions"]["code"] if r.get("errors") else "OK" for r in results)
    assert codes == ["CONFLICT", "CONFLICT", "CONFLICT", "OK"]
    assert await count_users(db_admin) == 1
    assert await db_admin.fetchval("SELECT count(*) FROM users.outbox") == 1


async def test_refresh_token_rotation_and_replay_revokes_the_family(users_api) -> None:
    first = (await users_api.ok(REGISTER, registration()))["register"]
    second = (await users_api.ok(REFRESH, {"t": first["refreshToken"]}))["refreshToken"]
    assert second["refreshToken"] != first["refreshToken"]
    # replaying the used token is theft: refused, and the rotated successor dies with it
    assert await users_api.error_code(REFRESH, {"t": first["refreshToken"]}) == "UNAUTHENTICATED"
    assert await users_api.error_code(REFRESH, {"t": second["refreshToken"]}) == "UNAUTHENTICATED"
    # a fresh login starts a new, working family
    login = (await users_api.ok(LOGIN, {"e": "ada@example.com", "p": "analytical-engine-1843"}))["login"]
    assert (await users_api.ok(REFRESH, {"t": login["refreshToken"]}))["refreshToken"]["accessToken"]


async def test_logout_revokes_refresh_token(users_api) -> None:
    first = (await users_api.ok(REGISTER, registration()))["register"]
    logout = "mutation($t: String!) { logout(refreshToken: $t) }"
    assert (await users_api.ok(logout, {"t": first["refreshToken"]}))["logout"] is True
    assert (await users_api.ok(logout, {"t": first["refreshToken"]}))["logout"] is False
    assert await users_api.error_code(REFRESH, {"t": first["refreshToken"]}) == "UNAUTHENTICATED"


async def test_lockout_after_five_failures_even_for_the_right_password(users_api) -> None:
    await users_api.ok(REGISTER, registration())
    for _ in range(5):
        assert await users_api.error_code(LOGIN, {"e": "ada@example.com", "p": "wrong-password-1"}) == "UNAUTHENTICATED"
    body = await users_api.raw(LOGIN, {"e": "ada@example.com", "p": "analytical-engine-1843"})
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "15 minute" in body["errors"][0]["message"]


async def test_address_book_defaults(users_api, make_user) -> None:
    _, token = await make_user()
    home = {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "us"}
    first = (await users_api.ok(ADD_ADDRESS, {"input": home}, token=token))["addAddress"]
    assert first["isDefaultShipping"] and first["isDefaultBilling"] and first["country"] == "US"
    second = (await users_api.ok(ADD_ADDRESS, {"input": {**home, "line1": "2 Side St", "isDefaultShipping": True}},
                                 token=token))["addAddress"]
    assert second["isDefaultShipping"] and not second["isDefaultBilling"]
    me = (await users_api.ok(ME, token=token))["me"]
    assert [a["isDefaultShipping"] for a in me["addresses"]] == [False, True]
    # deleting the default hands it to the remaining address
    await users_api.ok("mutation($id: ID!) { deleteAddress(id: $id) }", {"id": second["id"]}, token=token)
    me = (await users_api.ok(ME, token=token))["me"]
    assert [a["isDefaultShipping"] for a in me["addresses"]] == [True]
    three_letters = {"input": {**home, "country": "USA"}}
    assert await users_api.error_code(ADD_ADDRESS, three_letters, token=token) == "BAD_USER_INPUT"


async def test_another_users_address_is_forbidden(users_api, make_user) -> None:
    _, owner = await make_user()
    _, other = await make_user()
    home = {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}
    address = (await users_api.ok(ADD_ADDRESS, {"input": home}, token=owner))["addAddress"]
    delete = "mutation($id: ID!) { deleteAddress(id: $id) }"
    assert await users_api.error_code(delete, {"id": address["id"]}, token=other) == "FORBIDDEN"
    assert await users_api.error_code(delete, {"id": "999"}, token=other) == "NOT_FOUND"
    assert await users_api.error_code(delete, {"id": "abc"}, token=other) == "BAD_USER_INPUT"


async def test_grant_role_is_admin_only(users_api, make_user) -> None:
    grant = "mutation($u: ID!, $r: Role!) { grantRole(userId: $u, role: $r) { roles } }"
    target, customer_token = await make_user()
    _, admin_token = await make_user("ADMIN")
    assert await users_api.error_code(grant, {"u": str(target), "r": "SELLER"}, token=customer_token) == "FORBIDDEN"
    assert await users_api.error_code(grant, {"u": str(target), "r": "SELLER"}) == "UNAUTHENTICATED"
    roles = (await users_api.ok(grant, {"u": str(target), "r": "SELLER"}, token=admin_token))["grantRole"]["roles"]
    assert roles == ["CUSTOMER", "SELLER"]


async def test_user_entity_resolves_by_key(users_api, make_user) -> None:
    user_id, _ = await make_user("SELLER", email="seller@example.com")
    query = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id email } } }'
    data = await users_api.ok(query, {"r": [{"__typename": "User", "id": str(user_id)},
                                            {"__typename": "User", "id": "12345"}]})
    assert data["_entities"] == [{"id": str(user_id), "email": "seller@example.com"}, None]


async def test_a_customers_email_is_theirs_and_the_admins_to_see(users_api, make_user) -> None:
    # A review's author is a customer: the author's User is reachable by anyone through the review, the email not.
    customer_id, customer = await make_user(email=f"ada-{uuid.uuid4().hex[:6]}@example.com")
    _, other = await make_user()
    _, admin = await make_user("ADMIN")
    query = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id firstName email } } }'
    reps = {"r": [{"__typename": "User", "id": str(customer_id)}]}
    assert await users_api.error_code(query, reps) == "UNAUTHENTICATED"
    assert await users_api.error_code(query, reps, token=other) == "FORBIDDEN"
    for token in (customer, admin):
        assert (await users_api.ok(query, reps, token=token))["_entities"][0]["email"].startswith("ada-")
    # Without the email, the same user is anyone's to see
    public = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id firstName } } }'
    assert (await users_api.ok(public, reps))["_entities"] == [{"id": str(customer_id), "firstName": "Test"}]
    # Signing up or in, the payload's user is the caller, who has no token yet
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    register = ('mutation($i: RegisterInput!) { register(input: $i) { user { email } } }')
    assert (await users_api.ok(register, {"i": {"email": email, "password": "correct-horse-battery"}})
            )["register"]["user"]["email"] == email


async def test_jwks_publishes_the_signing_key(users_api, make_user) -> None:
    _, token = await make_user()
    import jwt
    jwks = (await users_api.http.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    assert [k["kid"] for k in jwks["keys"]] == [kid]
    assert jwks["keys"][0]["alg"] == "RS256"


ENTITIES = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id firstName roles } } }'


async def test_cached_entities_follow_committed_profile_and_role_changes(users_api, make_user, redis) -> None:
    user_id, token = await make_user()
    _, admin = await make_user("ADMIN")
    reps = {"r": [{"__typename": "User", "id": str(user_id)}]}
    assert (await users_api.ok(ENTITIES, reps))["_entities"][0]["firstName"] == "Test"
    assert await redis.keys("users:response:*"), "the entity fetch should have been cached"
    await users_api.ok('mutation { updateProfile(input: {firstName: "Renamed"}) { id } }', token=token)
    assert (await users_api.ok(ENTITIES, reps))["_entities"][0]["firstName"] == "Renamed"
    await users_api.ok('mutation($u: ID!) { grantRole(userId: $u, role: SELLER) { id } }', {"u": str(user_id)},
                       token=admin)
    assert (await users_api.ok(ENTITIES, reps))["_entities"][0]["roles"] == ["CUSTOMER", "SELLER"]


async def test_private_fields_are_never_served_from_cache(users_api, make_user, redis) -> None:
    owner_id, owner = await make_user()
    _, stranger = await make_user()
    home = {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}
    await users_api.ok(ADD_ADDRESS, {"input": home}, token=owner)
    query = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { addresses { city } } } }'
    reps = {"r": [{"__typename": "User", "id": str(owner_id)}]}
    assert (await users_api.ok(query, reps, token=owner))["_entities"][0]["addresses"] == [{"city": "Springfield"}]
    assert await users_api.error_code(query, reps, token=stranger) == "FORBIDDEN"
    assert await users_api.error_code("{ me { id } }", token="garbage") == "UNAUTHENTICATED"
    assert await redis.keys("users:response:*") == []


async def test_concurrent_use_of_one_refresh_token_has_one_winner_and_revokes_the_family(users_api) -> None:
    first = (await users_api.ok(REGISTER, registration()))["register"]
    results = await asyncio.gather(*(users_api.raw(REFRESH, {"t": first["refreshToken"]}) for _ in range(5)))
    winners = [r["data"]["refreshToken"] for r in results if not r.get("errors")]
    assert len(winners) == 1
    assert all(r["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" for r in results if r.get("errors"))
    # the losers were replays: the winner's new token died with its family
    assert await users_api.error_code(REFRESH, {"t": winners[0]["refreshToken"]}) == "UNAUTHENTICATED"
