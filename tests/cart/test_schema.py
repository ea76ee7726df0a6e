"""The cart subgraph through its GraphQL API (in-process ASGI, real Redis and Postgres)."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from subgraphs.cart import repository
from tests.cart.conftest import ADD, CART, CLEAR, MERGE, REMOVE, UPDATE, next_id


async def add(cart_api, variant_id: int, quantity: int = 1, *, cart_id: str | None = None,
              token: str | None = None) -> dict:
    data = await cart_api.ok(ADD, {"cartId": cart_id, "variantId": str(variant_id), "quantity": quantity}, token)
    return data["addToCart"]


async def read(cart_api, cart_id: str | None = None, token: str | None = None) -> dict | None:
    return (await cart_api.ok(CART, {"cartId": cart_id}, token))["cart"]


# ---- guest and user carts --------------------------------------------------------------------------------

async def test_guest_cart_is_created_without_a_token_and_usable_by_its_id(cart_api, make_variant) -> None:
    shoe = await make_variant(price="19.99")

    cart = await add(cart_api, shoe["variant_id"], 2)

    assert len(cart["id"]) >= 20  # secrets.token_urlsafe(16)
    assert cart["items"] == [{
        "id": str(shoe["variant_id"]), "quantity": 2, "name": "Trail Shoe", "sku": shoe["sku"],
        "productId": str(shoe["product_id"]), "available": True, "variant": {"id": str(shoe["variant_id"])},
        "unitPrice": {"amount": "19.99", "currency": "USD"}, "lineTotal": {"amount": "39.98", "currency": "USD"}}]
    assert cart["subtotal"] == {"amount": "39.98", "currency": "USD"}
    assert cart["itemCount"] == 2
    assert await read(cart_api, cart["id"]) == cart
    again = await add(cart_api, shoe["variant_id"], 1, cart_id=cart["id"])
    assert again["id"] == cart["id"] and again["itemCount"] == 3


async def test_without_a_cart_id_or_token_there_is_no_cart(cart_api) -> None:
    assert await read(cart_api) is None


async def test_each_guest_add_without_a_cart_id_starts_a_new_cart(cart_api, make_variant) -> None:
    shoe = await make_variant()

    first = await add(cart_api, shoe["variant_id"])
    second = await add(cart_api, shoe["variant_id"])

    assert first["id"] != second["id"]


async def test_user_cart_is_created_on_first_add_and_found_without_a_cart_id(cart_api, make_variant,
                                                                            token_for) -> None:
    shoe, sock = await make_variant(price="10.00"), await make_variant(price="2.50")
    token = token_for(next_id())
    assert await read(cart_api, token=token) is None

    first = await add(cart_api, shoe["variant_id"], 1, token=token)
    second = await add(cart_api, sock["variant_id"], 3, token=token)

    assert second["id"] == first["id"]
    mine = await read(cart_api, token=token)
    assert [i["id"] for i in mine["items"]] == [str(shoe["variant_id"]), str(sock["variant_id"])]  # added order
    assert mine["subtotal"] == {"amount": "17.50", "currency": "USD"}


async def test_adding_to_an_existing_line_adds_the_quantities_up(cart_api, make_variant) -> None:
    shoe = await make_variant(price="5.00", stock=20)
    cart = await add(cart_api, shoe["variant_id"], 2)

    cart = await add(cart_api, shoe["variant_id"], 3, cart_id=cart["id"])

    assert [(i["quantity"], i["lineTotal"]["amount"]) for i in cart["items"]] == [(5, "25.00")]


# ---- validation: nothing changes on any error ------------------------------------------------------------

@pytest.mark.parametrize("quantity", [0, -1, 101])
async def test_quantity_outside_1_to_100_is_bad_user_input(cart_api, make_variant, quantity: int) -> None:
    shoe = await make_variant(stock=500)
    cart = await add(cart_api, shoe["variant_id"], 1)
    variables = {"cartId": cart["id"], "variantId": str(shoe["variant_id"]), "quantity": quantity}

    assert await cart_api.error_code(ADD, variables) == "BAD_USER_INPUT"
    assert await cart_api.error_code(UPDATE, {"cartId": cart["id"], "itemId": str(shoe["variant_id"]),
                                              "quantity": quantity}) == "BAD_USER_INPUT"
    assert (await read(cart_api, cart["id"]))["itemCount"] == 1


async def test_a_line_never_grows_past_100_units(cart_api, make_variant) -> None:
    shoe = await make_variant(stock=500)
    cart = await add(cart_api, shoe["variant_id"], 60)

    code = await cart_api.error_code(ADD, {"cartId": cart["id"], "variantId": str(shoe["variant_id"]), "quantity": 41})

    assert code == "BAD_USER_INPUT"
    assert (await read(cart_api, cart["id"]))["itemCount"] == 60


async def test_unknown_variant_is_not_found_and_creates_no_cart(cart_api, redis, token_for) -> None:
    token = token_for(next_id())

    code = await cart_api.error_code(ADD, {"variantId": str(next_id()), "quantity": 1}, token)

    assert code == "NOT_FOUND"
    assert await read(cart_api, token=token) is None
    assert [k async for k in redis.scan_iter(match="cart:user:*")] == []


async def test_more_than_the_available_stock_is_out_of_stock(cart_api, make_variant) -> None:
    shoe = await make_variant(stock=3)
    cart = await add(cart_api, shoe["variant_id"], 2)

    body = await cart_api.raw(ADD, {"cartId": cart["id"], "variantId": str(shoe["variant_id"]), "quantity": 2})

    assert body["errors"][0]["extensions"]["code"] == "OUT_OF_STOCK"
    assert body["data"] is None
    assert (await read(cart_api, cart["id"]))["itemCount"] == 2


async def test_a_variant_with_no_stock_projection_counts_as_unavailable(cart_api, make_variant) -> None:
    shoe = await make_variant(stock=None)

    assert await cart_api.error_code(ADD, {"variantId": str(shoe["variant_id"]), "quantity": 1}) == "OUT_OF_STOCK"


async def test_the_line_cap_refuses_a_new_line_but_not_more_of_an_existing_one(cart_api, make_variant, redis,
                                                                               settings) -> None:
    # Given a cart holding the maximum number of lines (filled straight in Redis: 100 adds add nothing here)
    first = await make_variant(stock=50)
    cart = await add(cart_api, first["variant_id"], 1)
    filler = {str(next_id()): f"{n + 2}:1" for n in range(settings.cart_max_lines - 1)}
    await redis.hset(repository.items_key(cart["id"]), mapping=filler)
    extra = await make_variant()

    code = await cart_api.error_code(ADD, {"cartId": cart["id"], "variantId": str(extra["variant_id"]), "quantity": 1})
    more = await add(cart_api, first["variant_id"], 1, cart_id=cart["id"])

    assert code == "BAD_USER_INPUT"
    assert len(more["items"]) == settings.cart_max_lines
    assert str(extra["variant_id"]) not in {i["id"] for i in more["items"]}


# ---- who may touch which cart ----------------------------------------------------------------------------

async def test_a_users_cart_is_only_for_its_owner(cart_api, make_variant, token_for) -> None:
    shoe = await make_variant()
    owner = token_for(next_id())
    cart = await add(cart_api, shoe["variant_id"], 1, token=owner)
    other = token_for(next_id())
    item = {"cartId": cart["id"], "itemId": str(shoe["variant_id"])}

    assert await cart_api.error_code(CART, {"cartId": cart["id"]}, other) == "FORBIDDEN"
    assert await cart_api.error_code(ADD, {"cartId": cart["id"], "variantId": str(shoe["variant_id"]),
                                           "quantity": 1}, other) == "FORBIDDEN"
    assert await cart_api.error_code(UPDATE, {**item, "quantity": 5}, other) == "FORBIDDEN"
    assert await cart_api.error_code(REMOVE, item, other) == "FORBIDDEN"
    assert await cart_api.error_code(CLEAR, {"cartId": cart["id"]}, other) == "FORBIDDEN"
    assert await cart_api.error_code(CART, {"cartId": cart["id"]}) == "UNAUTHENTICATED"
    assert (await read(cart_api, cart["id"], owner))["itemCount"] == 1


async def test_unknown_or_malformed_cart_ids_are_not_found(cart_api, make_variant) -> None:
    shoe = await make_variant()

    assert await cart_api.error_code(CART, {"cartId": "x" * 22}) == "NOT_FOUND"
    assert await cart_api.error_code(CART, {"cartId": "cart:../etc"}) == "NOT_FOUND"
    assert await cart_api.error_code(ADD, {"cartId": "nope-nope-nope-nope-1", "variantId": str(shoe["variant_id"]),
                                           "quantity": 1}) == "NOT_FOUND"


async def test_a_bad_token_is_unauthenticated_not_anonymous(cart_api) -> None:
    assert await cart_api.error_code(CART, {}, "not-a-jwt") == "UNAUTHENTICATED"


# ---- update, remove, clear -------------------------------------------------------------------------------

async def test_update_remove_and_clear_lines(cart_api, make_variant, token_for) -> None:
    shoe, sock = await make_variant(price="10.00"), await make_variant(price="1.00")
    token = token_for(next_id())
    await add(cart_api, shoe["variant_id"], 1, token=token)
    await add(cart_api, sock["variant_id"], 1, token=token)

    updated = (await cart_api.ok(UPDATE, {"itemId": str(shoe["variant_id"]), "quantity": 4}, token))["updateCartItem"]
    removed = (await cart_api.ok(REMOVE, {"itemId": str(sock["variant_id"])}, token))["removeCartItem"]
    missing = await cart_api.error_code(REMOVE, {"itemId": str(sock["variant_id"])}, token)
    cleared = (await cart_api.ok(CLEAR, {}, token))["clearCart"]

    assert [(i["id"], i["quantity"]) for i in updated["items"]] == [(str(shoe["variant_id"]), 4),
                                                                    (str(sock["variant_id"]), 1)]
    assert updated["subtotal"]["amount"] == "41.00"
    assert [i["id"] for i in removed["items"]] == [str(shoe["variant_id"])]
    assert missing == "NOT_FOUND"
    assert cleared["items"] == [] and cleared["itemCount"] == 0
    assert cleared["subtotal"] == {"amount": "0.00", "currency": "USD"}
    assert cleared["id"] == updated["id"]


async def test_updating_above_stock_is_refused_but_trimming_is_not(cart_api, make_variant, redis) -> None:
    shoe = await make_variant(stock=5)
    cart = await add(cart_api, shoe["variant_id"], 5)
    await redis.set(repository.stock_key(shoe["variant_id"]), 2)  # stock fell after the line was added
    item = {"cartId": cart["id"], "itemId": str(shoe["variant_id"])}

    refused = await cart_api.error_code(UPDATE, {**item, "quantity": 6})
    trimmed = (await cart_api.ok(UPDATE, {**item, "quantity": 4}))["updateCartItem"]

    assert refused == "OUT_OF_STOCK"
    assert trimmed["items"][0]["quantity"] == 4
    assert trimmed["items"][0]["available"] is False  # 4 wanted, 2 in stock


async def test_mutations_without_cart_id_need_a_cart_or_a_token(cart_api, make_variant, token_for) -> None:
    shoe = await make_variant()

    assert await cart_api.error_code(CLEAR, {}) == "BAD_USER_INPUT"
    assert await cart_api.error_code(UPDATE, {"itemId": str(shoe["variant_id"]), "quantity": 1},
                                     token_for(next_id())) == "NOT_FOUND"


# ---- merge -----------------------------------------------------------------------------------------------

async def test_merge_adds_up_caps_by_stock_and_deletes_the_guest_cart(cart_api, make_variant, token_for,
                                                                      redis) -> None:
    # Given a user with 2 shoes and 1 hat, and a guest cart with 3 shoes (4 in stock), 2 socks and 1 hat
    shoe, sock, hat = await make_variant(stock=4), await make_variant(stock=10), await make_variant(stock=10)
    token = token_for(next_id())
    await add(cart_api, shoe["variant_id"], 2, token=token)
    mine = await add(cart_api, hat["variant_id"], 1, token=token)
    guest = await add(cart_api, shoe["variant_id"], 3)
    await add(cart_api, sock["variant_id"], 2, cart_id=guest["id"])
    await add(cart_api, hat["variant_id"], 1, cart_id=guest["id"])

    merged = (await cart_api.ok(MERGE, {"guestCartId": guest["id"]}, token))["mergeCart"]

    assert merged["id"] == mine["id"]
    assert {i["id"]: i["quantity"] for i in merged["items"]} == {
        str(shoe["variant_id"]): 4, str(hat["variant_id"]): 2, str(sock["variant_id"]): 2}
    assert await cart_api.error_code(CART, {"cartId": guest["id"]}) == "NOT_FOUND"
    assert await redis.exists(repository.cart_key(guest["id"]), repository.items_key(guest["id"])) == 0


async def test_merge_into_a_user_without_a_cart_creates_one(cart_api, make_variant, token_for) -> None:
    shoe = await make_variant()
    guest = await add(cart_api, shoe["variant_id"], 2)
    token = token_for(next_id())

    merged = (await cart_api.ok(MERGE, {"guestCartId": guest["id"]}, token))["mergeCart"]

    assert merged["id"] != guest["id"]
    assert (await read(cart_api, token=token))["items"][0]["quantity"] == 2


async def test_merge_rules(cart_api, make_variant, token_for) -> None:
    shoe = await make_variant()
    guest = await add(cart_api, shoe["variant_id"], 1)
    owner = token_for(next_id())
    users_cart = await add(cart_api, shoe["variant_id"], 1, token=owner)

    assert await cart_api.error_code(MERGE, {"guestCartId": guest["id"]}) == "UNAUTHENTICATED"
    assert await cart_api.error_code(MERGE, {"guestCartId": "x" * 22}, owner) == "NOT_FOUND"
    assert await cart_api.error_code(MERGE, {"guestCartId": users_cart["id"]}, token_for(next_id())) == "FORBIDDEN"
    assert (await cart_api.ok(MERGE, {"guestCartId": users_cart["id"]}, owner))["mergeCart"]["itemCount"] == 1
    assert (await read(cart_api, guest["id"]))["itemCount"] == 1  # the refused merges left it alone


# ---- concurrency, TTL, outbox ----------------------------------------------------------------------------

async def test_concurrent_adds_to_one_cart_lose_no_update(cart_api, make_variant, token_for) -> None:
    shoe = await make_variant(stock=100)
    token = token_for(next_id())
    cart = await add(cart_api, (await make_variant(stock=5))["variant_id"], 1, token=token)

    results = await asyncio.gather(*(add(cart_api, shoe["variant_id"], 1, cart_id=cart["id"], token=token)
                                     for _ in range(50)))

    assert len(results) == 50
    line = next(i for i in (await read(cart_api, cart["id"], token))["items"] if i["id"] == str(shoe["variant_id"]))
    assert line["quantity"] == 50


async def test_concurrent_first_adds_of_a_user_make_one_cart(cart_api, make_variant, token_for) -> None:
    shoe = await make_variant(stock=100)
    token = token_for(next_id())

    results = await asyncio.gather(*(add(cart_api, shoe["variant_id"], 1, token=token) for _ in range(20)))

    assert len({r["id"] for r in results}) == 1
    assert (await read(cart_api, token=token))["itemCount"] == 20


async def test_every_write_refreshes_the_ttl_of_all_the_carts_keys(cart_api, make_variant, token_for, redis,
                                                                   settings) -> None:
    shoe = await make_variant()
    user_id = next_id()
    cart = await add(cart_api, shoe["variant_id"], 1, token=token_for(user_id))
    keys = [repository.cart_key(cart["id"]), repository.items_key(cart["id"]), repository.user_cart_key(user_id)]
    for key in keys:
        await redis.expire(key, 60)

    await cart_api.ok(UPDATE, {"cartId": cart["id"], "itemId": str(shoe["variant_id"]), "quantity": 2},
                      token_for(user_id))

    for key in keys:
        ttl = await redis.ttl(key)
        assert settings.cart_ttl_seconds - 60 < ttl <= settings.cart_ttl_seconds, key
    assert await redis.ttl(repository.variant_key(shoe["variant_id"])) == -1  # projections never expire


async def test_add_to_cart_writes_cart_item_added_to_the_outbox(cart_api, make_variant, token_for, db_admin) -> None:
    shoe = await make_variant()
    user_id = next_id()

    cart = await add(cart_api, shoe["variant_id"], 3, token=token_for(user_id))
    guest = await add(cart_api, shoe["variant_id"], 1)
    await cart_api.error_code(ADD, {"variantId": str(next_id()), "quantity": 1})  # refused: no event

    rows = await db_admin.fetch("SELECT topic, key, envelope FROM cart.outbox ORDER BY id")
    assert [(r["topic"], r["key"]) for r in rows] == [("cart.item_added", cart["id"]), ("cart.item_added", guest["id"])]
    payloads = [orjson.loads(r["envelope"])["payload"] for r in rows]
    assert payloads == [
        {"cart_id": cart["id"], "user_id": str(user_id), "variant_id": str(shoe["variant_id"]), "quantity": 3},
        {"cart_id": guest["id"], "user_id": None, "variant_id": str(shoe["variant_id"]), "quantity": 1}]


async def test_variant_is_a_federation_stub_the_router_can_extend(cart_api) -> None:
    sdl = (await cart_api.ok("{ _service { sdl } }"))["_service"]["sdl"]

    assert 'type ProductVariant @key(fields: "id", resolvable: false)' in sdl
    assert "type Money @shareable" in sdl
