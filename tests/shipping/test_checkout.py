"""Shipping at checkout: what shippingMethods offers for a cart and an address, and what placeOrder charges
(orders asks this shipping app for the price over real HTTP)."""
from __future__ import annotations

from tests.orders.conftest import customer, inventory_reserved  # noqa: F401  (fixture)
from tests.shipping.conftest import (
    CA,
    METHODS,
    NOWHERE,
    PLACE,
    US,
    domestic_and_international,
    outbox,
    place_input,
    product_created,
)


async def learn_weights(projections, weights: dict[int, int]) -> None:
    for variant_id, grams in weights.items():
        assert await projections.deliver("product.created", product_created(variant_id * 10, 5, {variant_id: grams})
                                         ) == "applied"


async def orders_of(db_admin, user_id: int) -> int:
    return await db_admin.fetchval("SELECT count(*) FROM orders.orders WHERE user_id = $1", user_id)


async def test_methods_are_priced_for_the_cart_and_the_address(shipping_api, peers, token_issuer, token_for,
                                                              projections) -> None:
    admin = token_for("ADMIN")
    await domestic_and_international(shipping_api, admin)
    await learn_weights(projections, {111: 1500, 222: 400})
    token = token_issuer.issue(424242, ["CUSTOMER"])
    cart = peers.add_cart(424242, [(111, 2, "9.99"), (222, 1, "5.50")])  # 25.48, 3.4 kg (4 started kg)

    offered = (await shipping_api.ok(METHODS, {"cart": cart, "address": US}, token))["shippingMethods"]
    assert [(m["name"], m["carrier"], m["price"], m["minDays"], m["maxDays"]) for m in offered] == [
        ("Standard", "USPS", {"amount": "8.99", "currency": "USD"}, 3, 5),
        ("Express", "UPS", {"amount": "14.99", "currency": "USD"}, 1, 2)]
    abroad = (await shipping_api.ok(METHODS, {"cart": cart, "address": CA}, token))["shippingMethods"]
    assert [(m["name"], m["price"]["amount"]) for m in abroad] == [("International", "21.99")]
    assert (await shipping_api.ok(METHODS, {"cart": cart, "address": NOWHERE}, token))["shippingMethods"] == []

    big = peers.add_cart(None, [(111, 4, "20.00")])  # a guest cart: 80.00, free standard shipping
    offered = (await shipping_api.ok(METHODS, {"cart": big, "address": US}, token))["shippingMethods"]
    assert [(m["name"], m["price"]["amount"]) for m in offered] == [("Standard", "0.00"), ("Express", "14.99")]
    # anonymous, no cart: each method's price for an empty cart
    offered = (await shipping_api.ok(METHODS, {"address": US}))["shippingMethods"]
    assert [(m["name"], m["price"]["amount"]) for m in offered] == [("Standard", "4.99"), ("Express", "14.99")]


async def test_the_shopper_is_charged_items_plus_shipping(shipping_api, orders_api, peers, token_issuer, token_for,
                                                         projections, saga, db_admin) -> None:
    methods = await domestic_and_international(shipping_api, token_for("ADMIN"))
    await learn_weights(projections, {111: 1500, 222: 400})
    token = token_issuer.issue(515151, ["CUSTOMER"])
    cart = peers.add_cart(515151, [(111, 2, "9.99"), (222, 1, "5.50")])
    order = (await orders_api.ok(PLACE, {"input": place_input(cartId=cart, shippingMethodId=methods["express"]["id"])},
                                 token))["placeOrder"]
    assert order["subtotal"]["amount"] == "25.48"
    assert order["shippingTotal"] == {"amount": "14.99", "currency": "USD"}
    assert order["total"] == {"amount": "40.47", "currency": "USD"}
    (placed,) = await outbox(db_admin, "orders", "order.placed")
    assert (placed["total"], placed["shipping_total"], placed["shipping_method_id"]) == (
        "40.47", "14.99", methods["express"]["id"])
    # stock reserved: payments is asked to charge the order total, shipping included
    assert await saga.deliver("inventory.reserved", inventory_reserved(order["id"])) == "applied"
    (confirmed,) = await outbox(db_admin, "orders", "order.confirmed")
    assert (confirmed["amount"], confirmed["currency"]) == ("40.47", "USD")


async def test_an_unknown_or_unavailable_method_is_refused_and_no_order_is_created(
        shipping_api, orders_api, peers, token_issuer, token_for, projections, db_admin) -> None:
    methods = await domestic_and_international(shipping_api, token_for("ADMIN"))
    await learn_weights(projections, {111: 6000})
    token = token_issuer.issue(616161, ["CUSTOMER"])
    cart = peers.add_cart(616161, [(111, 2, "9.99")])  # 12 kg

    async def refused(**overrides) -> None:
        body = await orders_api.raw(PLACE, {"input": place_input(cartId=cart, **overrides)}, token)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert error["extensions"].get("field") == "shippingMethodId", error

    await refused(shippingMethodId="123456789")  # unknown
    await refused(shippingMethodId=methods["world"]["id"])  # another zone's method for a US address
    await refused(shippingAddress=CA, shippingMethodId=methods["world"]["id"])  # over its 10 kg limit
    await refused(shippingAddress=CA)  # a zone covers it, but no method takes 12 kg
    assert await orders_of(db_admin, 616161) == 0
    assert await db_admin.fetchval("SELECT count(*) FROM orders.outbox") == 0


async def test_the_only_applicable_method_is_chosen_by_default_and_no_zone_means_no_shipping(
        shipping_api, orders_api, peers, token_issuer, token_for, projections) -> None:
    methods = await domestic_and_international(shipping_api, token_for("ADMIN"))
    await learn_weights(projections, {111: 900})
    token = token_issuer.issue(717171, ["CUSTOMER"])
    cart = peers.add_cart(717171, [(111, 1, "9.99")])
    abroad = (await orders_api.ok(PLACE, {"input": place_input(cartId=cart, shippingAddress=CA)}, token))["placeOrder"]
    assert abroad["shippingTotal"]["amount"] == "12.99"  # International: 9.99 + 3.00 for 1 started kg
    assert abroad["total"]["amount"] == "22.98"
    # Several apply and none is named: the cheapest (Standard, 4.99 + 1.00)
    cart = peers.add_cart(717171, [(111, 1, "9.99")])
    home = (await orders_api.ok(PLACE, {"input": place_input(cartId=cart)}, token))["placeOrder"]
    assert (home["shippingTotal"]["amount"], home["total"]["amount"]) == ("5.99", "15.98")
    # No zone covers the address: as before shipping existed, nothing is charged for it
    cart = peers.add_cart(717171, [(111, 1, "9.99")])
    far = (await orders_api.ok(PLACE, {"input": place_input(cartId=cart, shippingAddress=NOWHERE)}, token))[
        "placeOrder"]
    assert (far["shippingTotal"]["amount"], far["total"]["amount"]) == ("0.00", "9.99")
    assert methods  # (zones configured for the first two)
