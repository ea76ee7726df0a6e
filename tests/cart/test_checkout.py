"""GET /internal/checkout: the snapshot orders reads at placeOrder (docs/commerce-spine.md)."""
from __future__ import annotations

from typing import Any

from subgraphs.cart.consumers import project_product_deleted
from subgraphs.catalog.events import ProductDeleted
from tests.cart.conftest import next_id
from tests.cart.test_schema import add


async def checkout(cart_http, cart_id: str = "", token: str | None = None) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await cart_http.get("/internal/checkout", params={"cart_id": cart_id}, headers=headers)
    return response.status_code, response.json()


async def test_the_callers_cart_as_order_lines(cart_api, cart_http, make_variant, token_for) -> None:
    shoe, sock = await make_variant(price="19.99"), await make_variant(price="2.50", name="Sock")
    user_id = next_id()
    token = token_for(user_id)
    await add(cart_api, shoe["variant_id"], 2, token=token)
    cart = await add(cart_api, sock["variant_id"], 3, token=token)

    by_default = await checkout(cart_http, "", token)
    by_id = await checkout(cart_http, cart["id"], token)

    expected = {"cart_id": cart["id"], "user_id": str(user_id), "subtotal": "47.48", "currency": "USD",
                "coupon_code": None, "items": [
        {"item_id": str(shoe["variant_id"]), "variant_id": str(shoe["variant_id"]),
         "product_id": str(shoe["product_id"]), "sku": shoe["sku"], "name": "Trail Shoe", "quantity": 2,
         "unit_price": "19.99", "currency": "USD"},
        {"item_id": str(sock["variant_id"]), "variant_id": str(sock["variant_id"]),
         "product_id": str(sock["product_id"]), "sku": sock["sku"], "name": "Sock", "quantity": 3,
         "unit_price": "2.50", "currency": "USD"}]}
    assert by_default == (200, expected)
    assert by_id == (200, expected)


async def test_a_guest_cart_is_checked_out_by_whoever_holds_its_id(cart_api, cart_http, make_variant,
                                                                   token_for) -> None:
    shoe = await make_variant()
    guest = await add(cart_api, shoe["variant_id"], 1)

    status, body = await checkout(cart_http, guest["id"], token_for(next_id()))

    assert status == 200
    assert body["user_id"] is None and body["items"][0]["quantity"] == 1


async def test_no_token_and_no_cart_id_is_401(cart_http) -> None:
    assert await checkout(cart_http) == (401, {"code": "UNAUTHENTICATED", "message": "Sign in to use this cart"})
    assert (await checkout(cart_http, "", "garbage"))[0] == 401


async def test_another_users_cart_is_403_and_anonymous_401(cart_api, cart_http, make_variant, token_for) -> None:
    shoe = await make_variant()
    cart = await add(cart_api, shoe["variant_id"], 1, token=token_for(next_id()))

    status, body = await checkout(cart_http, cart["id"], token_for(next_id()))

    assert (status, body["code"]) == (403, "FORBIDDEN")
    assert (await checkout(cart_http, cart["id"]))[0] == 401


async def test_unknown_cart_or_no_cart_is_404(cart_http, token_for) -> None:
    status, body = await checkout(cart_http, "z" * 22, token_for(next_id()))

    assert (status, body["code"]) == (404, "NOT_FOUND")
    assert (await checkout(cart_http, "", token_for(next_id())))[0] == 404


async def test_a_line_no_longer_sold_is_409_so_no_order_holds_a_deleted_variant(cart_api, cart_http, make_variant,
                                                                                 token_for, redis) -> None:
    shoe, sock = await make_variant(), await make_variant()
    token = token_for(next_id())
    await add(cart_api, shoe["variant_id"], 1, token=token)
    await add(cart_api, sock["variant_id"], 1, token=token)

    await project_product_deleted(redis, ProductDeleted(product_id=sock["product_id"],
                                                        variant_ids=[sock["variant_id"]]))

    status, body = await checkout(cart_http, "", token)
    assert (status, body["code"]) == (409, "CONFLICT")
