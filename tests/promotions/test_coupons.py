"""Coupons in the promotions subgraph: createCoupon (ADMIN, validation), the discount rules, and the internal
quote/redeem endpoints the cart and orders call, including redemption under concurrency, replays and the
release of a cancelled order's slot. Orders' and the cart's side: tests/orders/test_coupons.py,
tests/cart/test_coupons.py."""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kernel.settings import Settings
from subgraphs.promotions import coupons
from subgraphs.promotions.coupon_repository import CouponRecord
from tests.conftest import GraphQLClient
from tests.promotions.coupon_support import (
    COUPON,
    COUPONS,
    CREATE_COUPON,
    coupon_input,
    create_coupon,
    new_code,
    promotions_app,
)

_users = itertools.count(5_000_000_000)


@pytest.fixture(scope="module")
async def coupon_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    async with promotions_app(settings) as (_, api):
        yield api


@pytest.fixture
def coupon_admin(token_issuer) -> str:
    return token_issuer.issue(next(_users), ["ADMIN"])


@pytest.fixture
def coupon_customer(token_issuer):
    def make() -> tuple[int, str]:
        user_id = next(_users)
        return user_id, token_issuer.issue(user_id, ["CUSTOMER"])
    return make


async def internal(api: GraphQLClient, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await api.http.post(f"/internal/coupons/{path}", json=body, headers=headers)
    return response.status_code, response.json()


def redeem_body(code: str, *, subtotal: str = "100.00", currency: str = "USD", key: str | None = None,
                order_id: int | None = None) -> dict[str, Any]:
    return {"code": code, "subtotal": subtotal, "currency": currency, "idempotency_key": key or new_code("key-"),
            "order_id": str(order_id or next(_users))}


async def coupon_count(db_admin) -> int:
    return await db_admin.fetchval("SELECT count(*) FROM promotions.coupons")


# ---- createCoupon -----------------------------------------------------------------------------------------

async def test_an_admin_creates_a_coupon_and_reads_it_back_by_code(coupon_api, coupon_admin) -> None:
    starts = datetime.now(UTC) - timedelta(minutes=1)
    ends = starts + timedelta(days=7)

    created = await create_coupon(coupon_api, coupon_admin, code="  spring-Sale_25 ", kind="FIXED", value="5",
                                  minSubtotal="20", startsAt=starts.isoformat(), endsAt=ends.isoformat(),
                                  usageLimit=100, perUserLimit=2)

    assert {k: v for k, v in created.items() if k not in ("id", "createdAt", "startsAt", "endsAt")} == {
        "code": "SPRING-SALE_25", "kind": "FIXED", "value": "5.00", "currency": "USD", "minSubtotal": "20.00",
        "usageLimit": 100, "perUserLimit": 2, "timesRedeemed": 0, "remaining": 100, "active": True}
    assert datetime.fromisoformat(created["startsAt"]) == starts
    by_code = (await coupon_api.ok(COUPON, {"code": "spring-sale_25"}, coupon_admin))["coupon"]
    assert by_code == created
    listed = (await coupon_api.ok(COUPONS, {"first": 10}, coupon_admin))["coupons"]
    assert [c["code"] for c in listed] == ["SPRING-SALE_25"]
    assert (await coupon_api.ok(COUPON, {"code": "NOPE-NOPE"}, coupon_admin))["coupon"] is None


async def test_defaults_start_now_no_end_no_total_limit_one_per_customer(coupon_api, coupon_admin) -> None:
    created = await create_coupon(coupon_api, coupon_admin, value="12.5")

    assert created["value"] == "12.50" and created["minSubtotal"] == "0.00" and created["endsAt"] is None
    assert created["usageLimit"] is None and created["remaining"] is None and created["perUserLimit"] == 1
    assert created["active"] is True


async def test_non_admin_create_coupon_is_forbidden_and_anonymous_unauthenticated(coupon_api, coupon_customer,
                                                                                   db_admin) -> None:
    _, customer = coupon_customer()

    assert await coupon_api.error_code(CREATE_COUPON, {"input": coupon_input()}, customer) == "FORBIDDEN"
    # FORBIDDEN wins over invalid input: a non-admin learns nothing about what would be accepted
    assert await coupon_api.error_code(CREATE_COUPON, {"input": coupon_input(value="-1")}, customer) == "FORBIDDEN"
    assert await coupon_api.error_code(CREATE_COUPON, {"input": coupon_input()}) == "UNAUTHENTICATED"
    assert await coupon_api.error_code(COUPON, {"code": "ANY-CODE"}, customer) == "FORBIDDEN"
    assert await coupon_api.error_code(COUPONS, {}, customer) == "FORBIDDEN"
    assert await coupon_count(db_admin) == 0


_NOW = datetime.now(UTC)


@pytest.mark.parametrize("overrides", [
    {"value": "0"},
    {"value": "-5"},
    {"value": "abc"},
    {"value": "NaN"},
    {"value": "1.005"},                                   # more than 2 decimals
    {"value": "1e20"},
    {"kind": "PERCENT", "value": "100.01"},               # PERCENT > 100
    {"startsAt": (_NOW + timedelta(days=2)).isoformat(), "endsAt": (_NOW + timedelta(days=1)).isoformat()},
    {"startsAt": (_NOW + timedelta(days=1)).isoformat(), "endsAt": (_NOW + timedelta(days=1)).isoformat()},
    {"startsAt": (_NOW - timedelta(days=2)).isoformat(), "endsAt": (_NOW - timedelta(days=1)).isoformat()},
    {"code": "AB"},                                       # too short
    {"code": "X" * 33},                                   # too long
    {"code": "HAS SPACE"},
    {"code": "ÄPFEL"},
    {"code": "drop;table"},
    {"code": ""},
    {"usageLimit": 0},
    {"perUserLimit": 0},
    {"usageLimit": -3},
    {"currency": "US"},
    {"currency": "usdollar"},
    {"minSubtotal": "-1"},
    {"minSubtotal": "ten"},
])
async def test_bad_inputs_are_bad_user_input_and_write_nothing(coupon_api, coupon_admin, db_admin,
                                                               overrides) -> None:
    body = await coupon_api.raw(CREATE_COUPON, {"input": coupon_input(**overrides)}, coupon_admin)

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert "Traceback" not in str(body) and "promotions." not in str(body)
    assert await coupon_count(db_admin) == 0


async def test_a_kind_outside_the_enum_is_refused_by_the_schema(coupon_api, coupon_admin) -> None:
    code = await coupon_api.error_code(CREATE_COUPON, {"input": coupon_input(kind="BOGO")}, coupon_admin)
    assert code == "BAD_USER_INPUT"


async def test_a_duplicate_code_is_conflict_case_insensitively(coupon_api, coupon_admin, db_admin) -> None:
    await create_coupon(coupon_api, coupon_admin, code="WELCOME10")

    body = await coupon_api.raw(CREATE_COUPON, {"input": coupon_input(code="welcome10")}, coupon_admin)

    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "field": "code"}
    assert await coupon_count(db_admin) == 1


async def test_concurrent_creations_of_one_code_create_one_coupon(coupon_api, coupon_admin, db_admin) -> None:
    bodies = await asyncio.gather(*[coupon_api.raw(CREATE_COUPON, {"input": coupon_input(code="RACE-ME")},
                                                   coupon_admin) for _ in range(8)])

    codes = sorted(b["errors"][0]["extensions"]["code"] if b.get("errors") else "OK" for b in bodies)
    assert codes == ["CONFLICT"] * 7 + ["OK"]
    assert await coupon_count(db_admin) == 1


# ---- the discount rules -----------------------------------------------------------------------------------

def _coupon(kind: str, value: str, **overrides: Any) -> CouponRecord:
    fields: dict[str, Any] = dict(id=1, code="RULES", kind=kind, value=Decimal(value), currency="USD",
                                  min_subtotal=Decimal("0.00"), starts_at=_NOW - timedelta(days=1), ends_at=None,
                                  usage_limit=None, per_user_limit=None, times_redeemed=0, created_by=None,
                                  created_at=_NOW)
    fields.update(overrides)
    return CouponRecord(**fields)


@pytest.mark.parametrize(("kind", "value", "subtotal", "discount"), [
    ("PERCENT", "10", "45.48", "4.55"),        # 4.548 rounds up
    ("PERCENT", "15", "33.30", "5.00"),        # 4.995: half-up, not banker's rounding
    ("PERCENT", "12.5", "0.20", "0.03"),       # 0.025 -> 0.03
    ("PERCENT", "12.5", "0.04", "0.01"),       # 0.005 -> 0.01
    ("PERCENT", "100", "19.99", "19.99"),
    ("PERCENT", "10", "0.00", "0.00"),
    ("FIXED", "5", "45.48", "5.00"),
    ("FIXED", "50", "45.48", "45.48"),         # capped at the subtotal: never a negative total
])
def test_discount_rules(kind: str, value: str, subtotal: str, discount: str) -> None:
    assert coupons.discount_for(_coupon(kind, value), Decimal(subtotal)) == Decimal(discount)


# ---- quote (the cart's applyCoupon) -----------------------------------------------------------------------

async def test_quote_answers_the_terms_and_the_discount(coupon_api, coupon_admin, coupon_customer) -> None:
    created = await create_coupon(coupon_api, coupon_admin, code="QUOTE10", value="10", minSubtotal="20")
    _, token = coupon_customer()

    status, body = await internal(coupon_api, "quote", {"code": "quote10", "subtotal": "45.48", "currency": "USD"},
                                  token)

    assert status == 200
    assert body == {"code": "QUOTE10", "kind": "PERCENT", "value": "10.00", "currency": "USD",
                    "min_subtotal": "20.00", "starts_at": body["starts_at"], "ends_at": None, "discount": "4.55"}
    assert datetime.fromisoformat(body["starts_at"]) == datetime.fromisoformat(created["startsAt"])
    # a guest cart (no token) is quoted too
    assert (await internal(coupon_api, "quote", {"code": "QUOTE10", "subtotal": "45.48", "currency": "USD"}))[0] == 200


async def test_quote_refusals(coupon_api, coupon_admin, db_admin) -> None:
    await create_coupon(coupon_api, coupon_admin, code="MIN-50", value="10", minSubtotal="50")
    await create_coupon(coupon_api, coupon_admin, code="LATER", value="10",
                        startsAt=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    await create_coupon(coupon_api, coupon_admin, code="OVER", value="10")
    await db_admin.execute("UPDATE promotions.coupons SET starts_at = now() - interval '2 days', "
                           "ends_at = now() - interval '1 day' WHERE code = 'OVER'")
    await create_coupon(coupon_api, coupon_admin, code="USED-UP", value="10", usageLimit=1)
    await db_admin.execute("UPDATE promotions.coupons SET times_redeemed = 1 WHERE code = 'USED-UP'")

    async def refusal(code: str, subtotal: str = "100.00", currency: str = "USD") -> tuple[int, str, str]:
        status, body = await internal(coupon_api, "quote", {"code": code, "subtotal": subtotal, "currency": currency})
        return status, body["code"], body["message"]

    assert await refusal("NO-SUCH-CODE") == (400, "BAD_USER_INPUT", "Unknown coupon code")
    assert await refusal("x") == (400, "BAD_USER_INPUT",
                                  "'code' must be 3..32 characters: letters, digits, '-' or '_'")
    assert await refusal("MIN-50", "49.99") == (400, "BAD_USER_INPUT",
                                                "This coupon requires a subtotal of at least 50.00 USD")
    assert await refusal("MIN-50", "60.00", "EUR") == (400, "BAD_USER_INPUT", "This coupon applies to USD orders only")
    assert await refusal("LATER") == (409, "CONFLICT", "This coupon is not active yet")
    assert await refusal("OVER") == (409, "CONFLICT", "This coupon has expired")
    assert await refusal("USED-UP") == (409, "CONFLICT", "This coupon has been fully redeemed")
    assert (await internal(coupon_api, "quote", {"code": "MIN-50"}))[0] == 400  # no subtotal
    assert (await internal(coupon_api, "quote", {"code": "MIN-50", "subtotal": "10", "currency": "USD"},
                           "not-a-token"))[0] == 401


# ---- redeem (orders' placeOrder) --------------------------------------------------------------------------

async def test_redeem_counts_once_per_request_and_a_replay_reuses_the_first_order_id(
        coupon_api, coupon_admin, coupon_customer, db_admin) -> None:
    await create_coupon(coupon_api, coupon_admin, code="ONCE", value="10", usageLimit=5, perUserLimit=3)
    _, token = coupon_customer()
    first = redeem_body("ONCE", key="order-key-1", order_id=111)

    status, body = await internal(coupon_api, "redeem", first, token)
    replay_status, replay = await internal(coupon_api, "redeem", {**first, "order_id": "222"}, token)

    assert (status, body["discount"], body["order_id"], body["replayed"]) == (200, "10.00", "111", False)
    assert (replay_status, replay["order_id"], replay["replayed"]) == (200, "111", True)
    assert replay["redemption_id"] == body["redemption_id"]
    assert await db_admin.fetchval("SELECT times_redeemed FROM promotions.coupons WHERE code = 'ONCE'") == 1
    assert await db_admin.fetchval("SELECT count(*) FROM promotions.coupon_redemptions") == 1


async def test_a_key_that_redeemed_one_coupon_cannot_redeem_another(coupon_api, coupon_admin,
                                                                    coupon_customer) -> None:
    await create_coupon(coupon_api, coupon_admin, code="FIRST", value="10")
    await create_coupon(coupon_api, coupon_admin, code="SECOND", value="10")
    _, token = coupon_customer()
    assert (await internal(coupon_api, "redeem", redeem_body("FIRST", key="same-key-1"), token))[0] == 200

    status, body = await internal(coupon_api, "redeem", redeem_body("SECOND", key="same-key-1"), token)

    assert (status, body["code"]) == (409, "CONFLICT")


async def test_redeem_needs_a_caller_and_a_well_formed_body(coupon_api, coupon_admin, coupon_customer) -> None:
    await create_coupon(coupon_api, coupon_admin, code="BODY", value="10")
    _, token = coupon_customer()

    assert (await internal(coupon_api, "redeem", redeem_body("BODY")))[0] == 401
    assert (await internal(coupon_api, "redeem", {**redeem_body("BODY"), "order_id": "x"}, token))[0] == 400
    assert (await internal(coupon_api, "redeem", {**redeem_body("BODY"), "idempotency_key": ""}, token))[0] == 400
    assert (await internal(coupon_api, "redeem", {**redeem_body("BODY"), "subtotal": "-1"}, token))[0] == 400
    response = await coupon_api.http.post("/internal/coupons/redeem", content=b"[1, 2",
                                          headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 400


async def test_per_user_limit_and_release_on_cancellation(coupon_api, coupon_admin, coupon_customer,
                                                          db_admin, settings) -> None:
    await create_coupon(coupon_api, coupon_admin, code="ONE-EACH", value="10", perUserLimit=1)
    user_id, token = coupon_customer()
    _, other = coupon_customer()
    assert (await internal(coupon_api, "redeem", redeem_body("ONE-EACH", order_id=9001), token))[0] == 200

    status, body = await internal(coupon_api, "redeem", redeem_body("ONE-EACH"), token)
    quote_status, _ = await internal(coupon_api, "quote", {"code": "ONE-EACH", "subtotal": "10", "currency": "USD"},
                                     token)

    assert (status, body["message"]) == (409, "You have already used this coupon as often as it allows")
    assert quote_status == 409
    assert (await internal(coupon_api, "redeem", redeem_body("ONE-EACH"), other))[0] == 200

    # when the first order is cancelled (the promotions consumer's order.cancelled handler), twice
    from kernel.db import create_engine, create_session_factory
    engine = create_engine(settings)
    try:
        for _ in range(2):
            async with create_session_factory(engine)() as session, session.begin():
                await coupons.release_order(session, order_id=9001, user_id=user_id)
        async with create_session_factory(engine)() as session, session.begin():  # an order without a coupon
            await coupons.release_order(session, order_id=424242, user_id=user_id)
    finally:
        await engine.dispose()

    # then its slot is back, once, and the customer may redeem again
    assert await db_admin.fetchval("SELECT times_redeemed FROM promotions.coupons WHERE code = 'ONE-EACH'") == 1
    assert (await internal(coupon_api, "redeem", redeem_body("ONE-EACH"), token))[0] == 200


async def test_50_concurrent_redemptions_of_a_10_use_coupon_give_exactly_10(coupon_api, coupon_admin,
                                                                            coupon_customer, db_admin) -> None:
    await create_coupon(coupon_api, coupon_admin, code="TEN-ONLY", value="5", kind="FIXED", usageLimit=10)
    customers = [coupon_customer() for _ in range(50)]

    results = await asyncio.gather(*[internal(coupon_api, "redeem", redeem_body("TEN-ONLY"), token)
                                     for _, token in customers])

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 10 + [409] * 40
    assert {body["message"] for status, body in results if status == 409} == {"This coupon has been fully redeemed"}
    row = await db_admin.fetchrow("SELECT times_redeemed, usage_limit FROM promotions.coupons WHERE code = 'TEN-ONLY'")
    assert (row["times_redeemed"], row["usage_limit"]) == (10, 10)
    assert await db_admin.fetchval("SELECT count(*) FROM promotions.coupon_redemptions") == 10


async def test_release_gives_back_only_the_callers_redemption_once(coupon_api, coupon_admin, coupon_customer,
                                                                  db_admin) -> None:
    await create_coupon(coupon_api, coupon_admin, code="GIVE-BACK", value="10")
    _, token = coupon_customer()
    _, stranger = coupon_customer()
    assert (await internal(coupon_api, "redeem", redeem_body("GIVE-BACK", order_id=777), token))[0] == 200

    assert await internal(coupon_api, "release", {"order_id": "777"}, stranger) == (200, {"released": False})
    assert await internal(coupon_api, "release", {"order_id": "777"}, token) == (200, {"released": True})
    assert await internal(coupon_api, "release", {"order_id": "777"}, token) == (200, {"released": False})
    assert (await internal(coupon_api, "release", {"order_id": "777"}))[0] == 401
    assert (await internal(coupon_api, "release", {"order_id": "nope"}, token))[0] == 400
    assert await db_admin.fetchval("SELECT times_redeemed FROM promotions.coupons WHERE code = 'GIVE-BACK'") == 0
