"""applyCoupon / removeCoupon: the cart asks the real promotions app (served over real HTTP) whether a code
applies, keeps the coupon's terms with the cart (Redis, Lua), shows coupon/discount/total, hands the code to
placeOrder in the checkout snapshot, and lets it go with the lines the order took."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kernel.settings import Settings
from subgraphs.cart.consumers import take_ordered_items
from tests.cart.conftest import ADD, MERGE, REMOVE, next_id, placed
from tests.conftest import GraphQLClient, served_in_process
from tests.orders.conftest import serve_locally
from tests.promotions.coupon_support import create_coupon, promotions_app

CART_FIELDS = """id subtotal { amount currency } discount { amount currency } total { amount currency }
  coupon { code applicable discount { amount currency } } items { id quantity }"""
APPLY = f"""mutation($cartId: ID, $code: String!) {{ applyCoupon(cartId: $cartId, code: $code) {{ {CART_FIELDS} }} }}"""
UNAPPLY = f"mutation($cartId: ID) {{ removeCoupon(cartId: $cartId) {{ {CART_FIELDS} }} }}"
CART = f"query($cartId: ID) {{ cart(cartId: $cartId) {{ {CART_FIELDS} }} }}"


@pytest.fixture(scope="module")
async def coupon_promotions(settings: Settings) -> AsyncIterator[tuple[str, GraphQLClient]]:
    async with promotions_app(settings) as (app, api), serve_locally(app) as url:
        yield url, api


@contextlib.asynccontextmanager
async def cart_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from subgraphs.cart.app import build_app
    app = build_app(settings)
    async with served_in_process(app, "http://cart") as http:
        yield http


@pytest.fixture(scope="module")
async def coupon_cart_http(settings: Settings,
                           coupon_promotions: tuple[str, GraphQLClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with cart_client(settings.model_copy(update={"promotions_service_url": coupon_promotions[0]})) as http:
        yield http


@pytest.fixture(scope="module")
def coupon_cart(coupon_cart_http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(coupon_cart_http, "/graphql")


@pytest.fixture
def coupon_admin(token_issuer) -> str:
    return token_issuer.issue(1, ["ADMIN"])


async def coupon(coupon_promotions: tuple[str, GraphQLClient], admin: str, **fields: Any) -> dict[str, Any]:
    return await create_coupon(coupon_promotions[1], admin, **fields)


async def cart_with(api: GraphQLClient, make_variant, token: str | None, *, price: str = "19.99",
                    quantity: int = 2) -> dict[str, Any]:
    variant = await make_variant(price=price)
    cart = (await api.ok(ADD, {"cartId": None, "variantId": variant["variant_id"], "quantity": quantity},
                         token))["addToCart"]
    return {**cart, "variant_id": variant["variant_id"]}


async def snapshot(http: httpx.AsyncClient, cart_id: str, token: str | None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await http.get("/internal/checkout", params={"cart_id": cart_id}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_apply_shows_the_discount_and_checkout_hands_the_code_on(coupon_cart, coupon_cart_http,
                                                                       coupon_promotions, coupon_admin, make_variant,
                                                                       token_for) -> None:
    await coupon(coupon_promotions, coupon_admin, code="SAVE10", value="10")
    token = token_for(next_id())
    cart = await cart_with(coupon_cart, make_variant, token)   # 2 x 19.99 = 39.98

    applied = (await coupon_cart.ok(APPLY, {"code": " save10 "}, token))["applyCoupon"]

    usd = lambda amount: {"amount": amount, "currency": "USD"}
    assert applied["id"] == cart["id"]
    assert applied["coupon"] == {"code": "SAVE10", "applicable": True, "discount": usd("4.00")}
    assert (applied["subtotal"], applied["discount"], applied["total"]) == (usd("39.98"), usd("4.00"), usd("35.98"))
    assert (await coupon_cart.ok(CART, {}, token))["cart"] == applied
    assert (await snapshot(coupon_cart_http, cart["id"], token))["coupon_code"] == "SAVE10"


async def test_a_cart_without_coupon_shows_zero_discount(coupon_cart, make_variant, token_for) -> None:
    token = token_for(next_id())
    await cart_with(coupon_cart, make_variant, token, price="10.00", quantity=1)

    cart = (await coupon_cart.ok(CART, {}, token))["cart"]

    assert cart["coupon"] is None and cart["discount"]["amount"] == "0.00" and cart["total"]["amount"] == "10.00"


async def test_refusals_leave_the_cart_unchanged(coupon_cart, coupon_promotions, coupon_admin, make_variant,
                                                 token_for, db_admin) -> None:
    await coupon(coupon_promotions, coupon_admin, code="KEEP-ME", kind="FIXED", value="5")
    await coupon(coupon_promotions, coupon_admin, code="MIN-100", value="10", minSubtotal="100")
    await coupon(coupon_promotions, coupon_admin, code="GONE", value="10", usageLimit=1)
    await db_admin.execute("UPDATE promotions.coupons SET times_redeemed = 1 WHERE code = 'GONE'")
    token = token_for(next_id())
    await cart_with(coupon_cart, make_variant, token)
    await coupon_cart.ok(APPLY, {"code": "KEEP-ME"}, token)

    async def refusal(code: str) -> tuple[str, str | None, str]:
        body = await coupon_cart.raw(APPLY, {"code": code}, token)
        error = body["errors"][0]
        return error["extensions"]["code"], error["extensions"].get("field"), error["message"]

    assert await refusal("NOPE-NOPE") == ("BAD_USER_INPUT", "code", "Unknown coupon code")
    assert await refusal("no way!") == ("BAD_USER_INPUT", "code",
                                        "'code' must be 3..32 characters: letters, digits, '-' or '_'")
    assert await refusal("MIN-100") == ("BAD_USER_INPUT", "code",
                                        "This coupon requires a subtotal of at least 100.00 USD")
    assert await refusal("GONE") == ("CONFLICT", "code", "This coupon has been fully redeemed")
    assert (await coupon_cart.ok(CART, {}, token))["cart"]["coupon"]["code"] == "KEEP-ME"


async def test_the_per_user_limit_is_checked_for_a_signed_in_caller(coupon_cart, coupon_promotions, coupon_admin,
                                                                    make_variant, token_for, db_admin) -> None:
    await coupon(coupon_promotions, coupon_admin, code="ONCE-ONLY", value="10", perUserLimit=1)
    user_id = next_id()
    await db_admin.execute(
        "INSERT INTO promotions.coupon_redemptions (id, coupon_id, user_id, idempotency_key, order_id, currency, "
        "subtotal, discount) SELECT 1, id, $1, 'k-1', 99, 'USD', 10, 1 FROM promotions.coupons "
        "WHERE code = 'ONCE-ONLY'", user_id)
    token = token_for(user_id)
    await cart_with(coupon_cart, make_variant, token)

    assert await coupon_cart.error_code(APPLY, {"code": "ONCE-ONLY"}, token) == "CONFLICT"


async def test_remove_coupon_and_removing_none_is_fine(coupon_cart, coupon_cart_http, coupon_promotions,
                                                       coupon_admin, make_variant, token_for) -> None:
    await coupon(coupon_promotions, coupon_admin, code="BYE-BYE", value="10")
    token = token_for(next_id())
    cart = await cart_with(coupon_cart, make_variant, token)
    await coupon_cart.ok(APPLY, {"code": "BYE-BYE"}, token)

    removed = (await coupon_cart.ok(UNAPPLY, {}, token))["removeCoupon"]
    again = (await coupon_cart.ok(UNAPPLY, {"cartId": cart["id"]}, token))["removeCoupon"]

    assert removed["coupon"] is None and removed["total"] == removed["subtotal"]
    assert again == removed
    assert (await snapshot(coupon_cart_http, cart["id"], token))["coupon_code"] is None


async def test_a_cart_that_no_longer_qualifies_shows_the_coupon_as_not_applicable(
        coupon_cart, coupon_promotions, coupon_admin, make_variant, token_for) -> None:
    await coupon(coupon_promotions, coupon_admin, code="MIN-30", kind="FIXED", value="5", minSubtotal="30")
    token = token_for(next_id())
    cart = await cart_with(coupon_cart, make_variant, token)          # 39.98
    applied = (await coupon_cart.ok(APPLY, {"code": "MIN-30"}, token))["applyCoupon"]
    assert applied["total"]["amount"] == "34.98"

    # when the cart drops below the coupon's minimum
    smaller = (await coupon_cart.ok(REMOVE, {"cartId": None, "itemId": str(cart["variant_id"])}, token))
    cheap = await make_variant(price="12.00")
    cart = (await coupon_cart.ok(ADD, {"cartId": None, "variantId": cheap["variant_id"], "quantity": 1},
                                 token))["addToCart"]
    assert smaller["removeCartItem"]["itemCount"] == 0

    # then the coupon stays, shown as not applicable and taking nothing off
    view = (await coupon_cart.ok(CART, {}, token))["cart"]
    assert view["coupon"] == {"code": "MIN-30", "applicable": False, "discount": {"amount": "0.00", "currency": "USD"}}
    assert view["total"]["amount"] == "12.00"


async def test_access_rules_are_the_carts(coupon_cart, coupon_promotions, coupon_admin, make_variant,
                                          token_for) -> None:
    await coupon(coupon_promotions, coupon_admin, code="ACCESS", value="10")
    owner = token_for(next_id())
    cart = await cart_with(coupon_cart, make_variant, owner)
    guest = await cart_with(coupon_cart, make_variant, None)

    assert await coupon_cart.error_code(APPLY, {"cartId": cart["id"], "code": "ACCESS"},
                                        token_for(next_id())) == "FORBIDDEN"
    assert await coupon_cart.error_code(UNAPPLY, {"cartId": cart["id"]}, token_for(next_id())) == "FORBIDDEN"
    assert await coupon_cart.error_code(APPLY, {"code": "ACCESS"}) == "BAD_USER_INPUT"          # no cart id, no user
    assert await coupon_cart.error_code(APPLY, {"code": "ACCESS"}, token_for(next_id())) == "NOT_FOUND"  # no cart
    # a guest cart is open to whoever holds its id
    applied = (await coupon_cart.ok(APPLY, {"cartId": guest["id"], "code": "access"}))["applyCoupon"]
    assert applied["coupon"]["code"] == "ACCESS"


async def test_the_coupon_leaves_with_the_order_that_redeemed_it(coupon_cart, coupon_promotions, coupon_admin,
                                                                 make_variant, token_for, redis, settings) -> None:
    await coupon(coupon_promotions, coupon_admin, code="ORDERED", value="10")
    token = token_for(next_id())
    cart = await cart_with(coupon_cart, make_variant, token)
    await coupon_cart.ok(APPLY, {"code": "ORDERED"}, token)
    order = placed(cart["id"], [(cart["variant_id"], 2)], coupon_code="ORDERED")

    assert await take_ordered_items(redis, order, ttl_seconds=settings.cart_ttl_seconds)
    view = (await coupon_cart.ok(CART, {}, token))["cart"]

    assert view["coupon"] is None and view["items"] == []


async def test_an_order_with_another_code_leaves_the_carts_coupon(coupon_cart, coupon_promotions, coupon_admin,
                                                                  make_variant, token_for, redis, settings) -> None:
    await coupon(coupon_promotions, coupon_admin, code="STAYS", value="10")
    token = token_for(next_id())
    cart = await cart_with(coupon_cart, make_variant, token, quantity=3)
    await coupon_cart.ok(APPLY, {"code": "STAYS"}, token)

    await take_ordered_items(redis, placed(cart["id"], [(cart["variant_id"], 1)], coupon_code="OTHER"),
                             ttl_seconds=settings.cart_ttl_seconds)

    assert (await coupon_cart.ok(CART, {}, token))["cart"]["coupon"]["code"] == "STAYS"


async def test_merging_a_guest_cart_brings_its_coupon_unless_the_user_has_one(coupon_cart, coupon_promotions,
                                                                              coupon_admin, make_variant,
                                                                              token_for) -> None:
    await coupon(coupon_promotions, coupon_admin, code="GUEST-CODE", value="10")
    await coupon(coupon_promotions, coupon_admin, code="USER-CODE", value="20")
    first_guest = await cart_with(coupon_cart, make_variant, None)
    await coupon_cart.ok(APPLY, {"cartId": first_guest["id"], "code": "GUEST-CODE"})
    token = token_for(next_id())

    merged = (await coupon_cart.ok(MERGE, {"guestCartId": first_guest["id"]}, token))["mergeCart"]
    assert (await coupon_cart.ok(CART, {"cartId": merged["id"]}, token))["cart"]["coupon"]["code"] == "GUEST-CODE"

    await coupon_cart.ok(APPLY, {"code": "USER-CODE"}, token)
    second_guest = await cart_with(coupon_cart, make_variant, None)
    await coupon_cart.ok(APPLY, {"cartId": second_guest["id"], "code": "GUEST-CODE"})
    await coupon_cart.ok(MERGE, {"guestCartId": second_guest["id"]}, token)
    assert (await coupon_cart.ok(CART, {}, token))["cart"]["coupon"]["code"] == "USER-CODE"
