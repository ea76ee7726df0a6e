"""Coupons end to end, through the router and real processes: createCoupon (promotions) -> applyCoupon (cart,
asking promotions) -> placeOrder (orders redeems with promotions) -> the saga charges the discounted total ->
order.placed takes the coupon off the cart -> cancelling gives the slot back (promotions' consumer)."""
from __future__ import annotations

import uuid

from tests.e2e.test_commerce import ADD_TO_CART, ADDRESS, CANCEL, ORDER, eventually, stocked_variant, wait_for_status

CREATE_COUPON = """mutation($input: CreateCouponInput!) { createCoupon(input: $input) {
  code kind value usageLimit perUserLimit timesRedeemed remaining } }"""
COUPON = "query($code: String!) { coupon(code: $code) { code timesRedeemed remaining } }"
CART_FIELDS = ("id subtotal { amount } discount { amount } total { amount } "
               "coupon { code applicable discount { amount } }")
APPLY = f"mutation($code: String!) {{ applyCoupon(code: $code) {{ {CART_FIELDS} }} }}"
CART = f"query {{ cart {{ {CART_FIELDS} }} }}"
PLACE_ORDER = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  id status couponCode subtotal { amount } discount { amount } total { amount } } }"""


def place_input() -> dict:
    return {"shippingAddress": ADDRESS, "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
            "idempotencyKey": uuid.uuid4().hex}


async def test_a_coupon_from_creation_to_a_paid_discounted_order_and_back(router, make_user) -> None:
    # Given an admin's one-use 20% coupon and a product at 25.00
    _, admin = await make_user("ADMIN")
    _, ada = await make_user()
    _, bob = await make_user()
    code = f"E2E-{uuid.uuid4().hex[:8].upper()}"
    assert await router.error_code(CREATE_COUPON, {"input": {"code": code, "kind": "PERCENT", "value": "20"}},
                                   ada) == "FORBIDDEN"
    created = (await router.ok(CREATE_COUPON, {"input": {"code": code.lower(), "kind": "PERCENT", "value": "20",
                                                         "minSubtotal": "10", "usageLimit": 1}}, admin))["createCoupon"]
    assert created == {"code": code, "kind": "PERCENT", "value": "20.00", "usageLimit": 1, "perUserLimit": 1,
                       "timesRedeemed": 0, "remaining": 1}
    _, variant_id = await stocked_variant(router, admin, 10, price="25.00")

    # When ada applies it to her cart of 2 units and checks out without naming it again
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 2}, ada)
    cart = (await router.ok(APPLY, {"code": code.lower()}, ada))["applyCoupon"]
    assert (cart["subtotal"], cart["discount"], cart["total"]) == ({"amount": "50.00"}, {"amount": "10.00"},
                                                                   {"amount": "40.00"})
    assert cart["coupon"] == {"code": code, "applicable": True, "discount": {"amount": "10.00"}}
    order = (await router.ok(PLACE_ORDER, {"input": place_input()}, ada))["placeOrder"]

    # Then the order carries the discount and the charge is the discounted total
    assert (order["couponCode"], order["subtotal"], order["discount"], order["total"]) == (
        code, {"amount": "50.00"}, {"amount": "10.00"}, {"amount": "40.00"})
    paid = await wait_for_status(router, ada, order["id"], {"PAID"})
    assert paid["payment"]["amount"] == {"amount": "40.00"} and paid["total"] == {"amount": "40.00"}
    assert (await router.ok(COUPON, {"code": code}, admin))["coupon"] == {"code": code, "timesRedeemed": 1,
                                                                          "remaining": 0}

    async def cart_dropped_coupon() -> bool:
        current = (await router.ok(CART, {}, ada))["cart"]
        return current is None or current["coupon"] is None

    await eventually(cart_dropped_coupon, what="order.placed to take the coupon off the cart")

    # And the one use is spent: bob is refused, at applyCoupon and at placeOrder
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, bob)
    assert await router.error_code(APPLY, {"code": code}, bob) == "CONFLICT"
    refused = await router.raw(PLACE_ORDER, {"input": {**place_input(), "couponCode": code}}, bob)
    assert {k: refused["errors"][0]["extensions"].get(k) for k in ("code", "field")} == {
        "code": "CONFLICT", "field": "couponCode"}
    assert refused["errors"][0]["message"] == "This coupon has been fully redeemed"

    # When ada cancels her order, promotions' consumer gives the use back
    await router.ok(CANCEL, {"id": order["id"]}, ada)

    async def released() -> bool:
        return (await router.ok(COUPON, {"code": code}, admin))["coupon"]["timesRedeemed"] == 0

    await eventually(released, what="order.cancelled to release the redemption")

    # Then bob's order carries the discount
    bobs = (await router.ok(PLACE_ORDER, {"input": {**place_input(), "couponCode": code}}, bob))["placeOrder"]
    assert (bobs["couponCode"], bobs["discount"], bobs["total"]) == (code, {"amount": "5.00"}, {"amount": "20.00"})
    assert (await router.ok(ORDER, {"id": bobs["id"]}, bob))["order"]["total"] == {"amount": "20.00"}
