"""Shipping end to end, through the router and real processes: an ADMIN sets up zones and methods ->
shippingMethods prices the shopper's cart -> placeOrder with a method charges items + shipping (the payment is the
order total) -> shipments by the ADMIN (two lines, then the third; a stranger seller and over-shipping refused)
move the order to SHIPPED over Kafka (shipment.created -> orders) -> deliveries make it DELIVERED; Order.shipments
and Order.shippingTotal resolved through federation."""
from __future__ import annotations

import uuid
from decimal import Decimal

from tests.e2e.test_commerce import ADD_TO_CART, eventually, stocked_variant, wait_for_status

US = {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}
ZONE = "mutation($input: ShippingZoneInput!) { createShippingZone(input: $input) { id } }"
METHOD = "mutation($z: ID!, $input: ShippingMethodInput!) { createShippingMethod(zoneId: $z, input: $input) { id } }"
METHODS = """query($cart: ID, $a: AddressInput!) { shippingMethods(cartId: $cart, address: $a) {
  id name carrier price { amount currency } minDays maxDays } }"""
CART = "query { cart { id subtotal { amount } items { id } } }"
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status
  subtotal { amount } shippingTotal { amount } total { amount } items { id quantity } } }"""
ORDER = """query($id: ID!) { order(id: $id) { status total { amount } shippingTotal { amount currency }
  payment { status amount { amount } }
  shipments { carrier trackingNumber trackingUrl status lines { orderItemId quantity } } } }"""
SHIP = """mutation($input: CreateShipmentInput!) { createShipment(input: $input) { id carrier trackingUrl status } }"""
DELIVERED = "mutation($id: ID!) { markShipmentDelivered(id: $id) { id status } }"


async def test_shipping_from_zones_to_a_delivered_order(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    _, stranger_seller = await make_user("SELLER")
    _, ada = await make_user()
    variants = [(await stocked_variant(router, admin, 10, price=price))[1] for price in ("10.00", "12.50", "7.25")]

    zone = (await router.ok(ZONE, {"input": {"name": f"US {uuid.uuid4().hex[:4]}", "countries": ["US"]}},
                            admin))["createShippingZone"]["id"]
    await router.ok(METHOD, {"z": zone, "input": {"name": "Standard", "carrier": "USPS", "kind": "WEIGHT",
                                                  "price": "4.99", "pricePerKg": "1.00", "freeAbove": "100.00",
                                                  "minDays": 3, "maxDays": 5}}, admin)
    express = (await router.ok(METHOD, {"z": zone, "input": {"name": "Express", "carrier": "UPS", "kind": "FLAT",
                                                             "price": "14.99", "minDays": 1, "maxDays": 2}},
                               admin))["createShippingMethod"]["id"]
    assert await router.error_code(ZONE, {"input": {"name": "X", "countries": ["US"]}}, ada) == "FORBIDDEN"

    for variant in variants:
        await router.ok(ADD_TO_CART, {"cartId": None, "v": variant, "q": 1}, ada)
    cart = (await router.ok(CART, {}, ada))["cart"]
    assert cart["subtotal"]["amount"] == "29.75"
    offered = (await router.ok(METHODS, {"cart": cart["id"], "a": US}, ada))["shippingMethods"]
    # three variants of the default 500 g: 1.5 kg, 2 started kg
    assert [(m["name"], m["price"]["amount"]) for m in offered] == [("Standard", "6.99"), ("Express", "14.99")]

    # an unknown method: BAD_USER_INPUT, and no order
    place_input = {"shippingAddress": US, "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
                   "idempotencyKey": uuid.uuid4().hex, "shippingMethodId": "123456789"}
    assert await router.error_code(PLACE, {"input": place_input}, ada) == "BAD_USER_INPUT"
    assert (await router.ok(CART, {}, ada))["cart"]["items"]  # the cart is still there: nothing was ordered

    order = (await router.ok(PLACE, {"input": {**place_input, "idempotencyKey": uuid.uuid4().hex,
                                               "shippingMethodId": express}}, ada))["placeOrder"]
    assert (order["subtotal"]["amount"], order["shippingTotal"]["amount"], order["total"]["amount"]) == (
        "29.75", "14.99", "44.74")
    paid = await wait_for_status(router, ada, order["id"], {"PAID"})
    state = (await router.ok(ORDER, {"id": order["id"]}, ada))["order"]
    assert state["payment"]["amount"]["amount"] == state["total"]["amount"] == "44.74"  # charged items + shipping
    assert state["shippingTotal"] == {"amount": "14.99", "currency": "USD"} and state["shipments"] == []
    assert paid["status"] == "PAID"

    items = [i["id"] for i in order["items"]]

    def shipment(picks: list[tuple[str, int]], carrier: str = "UPS", tracking: str = "1Z999AA10123456784") -> dict:
        return {"input": {"orderId": order["id"], "carrier": carrier, "trackingNumber": tracking,
                          "lines": [{"orderItemId": item, "quantity": q} for item, q in picks]}}

    async def first_shipment() -> dict | None:
        # NOT_FOUND / CONFLICT until shipping has consumed order.placed and order.paid
        body = await router.raw(SHIP, shipment([(items[0], 1), (items[1], 1)]), admin)
        if body.get("errors"):
            assert body["errors"][0]["extensions"]["code"] in ("NOT_FOUND", "CONFLICT"), body
            return None
        return body["data"]["createShipment"]

    first = await eventually(first_shipment, what="shipping to learn the paid order")
    assert first["trackingUrl"] == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    assert await router.error_code(SHIP, shipment([(items[2], 1)]), stranger_seller) == "FORBIDDEN"
    assert await router.error_code(SHIP, shipment([(items[2], 2)]), admin) == "BAD_USER_INPUT"
    assert await router.error_code(SHIP, shipment([(items[0], 1)]), admin) == "BAD_USER_INPUT"  # already shipped
    await wait_for_status(router, ada, order["id"], {"SHIPPED"})

    third = (await router.ok(SHIP, shipment([(items[2], 1)], carrier="DHL", tracking="JD0146"), admin))[
        "createShipment"]
    assert third["trackingUrl"] == (
        "https://www.dhl.com/global-en/home/tracking/tracking-express.html?tracking-id=JD0146")
    await router.ok(DELIVERED, {"id": first["id"]}, admin)
    await router.ok(DELIVERED, {"id": third["id"]}, admin)
    await wait_for_status(router, ada, order["id"], {"DELIVERED"})
    done = (await router.ok(ORDER, {"id": order["id"]}, ada))["order"]
    assert [(s["carrier"], s["status"], sum(line["quantity"] for line in s["lines"])) for s in done["shipments"]] == [
        ("UPS", "DELIVERED", 2), ("DHL", "DELIVERED", 1)]
    assert Decimal(done["total"]["amount"]) == Decimal("29.75") + Decimal("14.99")
