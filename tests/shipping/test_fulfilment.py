"""Fulfilment: shipments of a paid order's lines, by an ADMIN or the lines' seller, and the order's way to SHIPPED
and DELIVERED through shipment.created / shipment.delivered, consumed by orders (idempotently)."""
from __future__ import annotations

from kernel.events import EventEnvelope
from tests.orders.conftest import inventory_reserved, payment_successful
from tests.shipping.conftest import DELIVERED, PLACE, SHIP, outbox, place_input, product_created

ORDER = "query($id: ID!) { order(id: $id) { status statusHistory { status } } }"
SHIPMENTS = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Order { id shipments {
  id carrier trackingNumber trackingUrl status lines { orderItemId quantity } } } } }"""
SELLER_A, SELLER_B = 3_000_001, 3_000_002


async def paid_order(orders_api, peers, token_issuer, saga, projections, db_admin, user_id: int):
    """A three-line order (variants 111 and 222 sold by seller A, 333 by seller B), placed, reserved and paid, whose
    order.placed and order.paid shipping has consumed. Returns (order, owner token)."""
    for variant, seller in ((111, SELLER_A), (222, SELLER_A), (333, SELLER_B)):
        assert await projections.deliver("product.created", product_created(variant * 10, seller, {variant: 500}))
    token = token_issuer.issue(user_id, ["CUSTOMER"])
    cart = peers.add_cart(user_id, [(111, 2, "10.00"), (222, 1, "5.00"), (333, 1, "7.00")])
    order = (await orders_api.ok(PLACE, {"input": place_input(cartId=cart)}, token))["placeOrder"]
    assert await saga.deliver("inventory.reserved", inventory_reserved(order["id"])) == "applied"
    assert await saga.deliver("payment.successful", payment_successful(order["id"], amount=order["total"]["amount"]))
    (placed,) = await outbox(db_admin, "orders", "order.placed")
    assert await projections.deliver("order.placed", placed) == "applied"
    return order, token, (await outbox(db_admin, "orders", "order.paid"))[0]


def lines(order, *picks: tuple[int, int]) -> list[dict[str, object]]:
    return [{"orderItemId": order["items"][index]["id"], "quantity": quantity} for index, quantity in picks]


async def status(orders_api, order, token) -> str:
    return (await orders_api.ok(ORDER, {"id": order["id"]}, token))["order"]["status"]


async def test_ship_two_lines_then_the_third_and_deliver_them(
        shipping_api, orders_api, peers, token_issuer, token_for, saga, projections, orders_shipping, db_admin) -> None:
    order, owner, paid = await paid_order(orders_api, peers, token_issuer, saga, projections, db_admin, 8_100_001)
    admin, seller_a, seller_b = token_for("ADMIN"), token_for("SELLER", user_id=SELLER_A), token_for(
        "SELLER", user_id=SELLER_B)

    def ship(picks, carrier="UPS", tracking="1Z999AA10123456784"):
        return {"input": {"orderId": order["id"], "lines": lines(order, *picks), "carrier": carrier,
                          "trackingNumber": tracking}}

    # not paid yet (shipping has not heard order.paid): CONFLICT
    assert await shipping_api.error_code(SHIP, ship([(0, 2)]), admin) == "CONFLICT"
    assert await projections.deliver("order.paid", paid) == "applied"
    # who and how much
    assert await shipping_api.error_code(SHIP, ship([(2, 1)]), seller_a) == "FORBIDDEN"  # seller B's line
    assert await shipping_api.error_code(SHIP, ship([(0, 1), (2, 1)]), seller_b) == "FORBIDDEN"
    assert await shipping_api.error_code(SHIP, ship([(0, 1)]), owner) == "FORBIDDEN"
    assert await shipping_api.error_code(SHIP, ship([(0, 3)]), admin) == "BAD_USER_INPUT"  # 2 ordered
    assert await shipping_api.error_code(SHIP, ship([(0, 1)], carrier="Pigeon Post"), admin) == "BAD_USER_INPUT"

    first = (await shipping_api.ok(SHIP, ship([(0, 2), (1, 1)]), admin))["createShipment"]
    assert (first["carrier"], first["status"], first["trackingUrl"]) == (
        "UPS", "SHIPPED", "https://www.ups.com/track?tracknum=1Z999AA10123456784")
    assert await shipping_api.error_code(SHIP, ship([(0, 1)]), admin) == "BAD_USER_INPUT"  # already all shipped
    (created,) = await outbox(db_admin, "shipping", "shipment.created")
    assert created["fully_shipped"] is False
    envelope = EventEnvelope.new("shipment.created", created)
    assert await orders_shipping.deliver("shipment.created", created, envelope=envelope) == "applied"
    assert await status(orders_api, order, owner) == "SHIPPED"
    (shipped,) = await outbox(db_admin, "orders", "order.shipped")
    assert (shipped["tracking_number"], shipped["tracking_url"], shipped["carrier"]) == (
        "1Z999AA10123456784", first["trackingUrl"], "UPS")
    # a redelivered event, and a re-sent copy, change nothing
    assert await orders_shipping.deliver("shipment.created", created, envelope=envelope) == "duplicate"
    assert await orders_shipping.deliver("shipment.created", created) == "applied"
    assert len(await outbox(db_admin, "orders", "order.shipped")) == 1

    # the third line, by its own seller, with FedEx
    third = (await shipping_api.ok(SHIP, ship([(2, 1)], carrier="fedex", tracking="123456789012"), seller_b))[
        "createShipment"]
    assert (third["carrier"], third["trackingUrl"]) == ("FedEx", "https://www.fedex.com/fedextrack/?trknbr=123456789012")
    second_created = (await outbox(db_admin, "shipping", "shipment.created"))[1]
    assert second_created["fully_shipped"] is True
    assert await orders_shipping.deliver("shipment.created", second_created) == "applied"
    assert await status(orders_api, order, owner) == "SHIPPED"

    # delivered: the order only once every shipment is
    assert await shipping_api.error_code(DELIVERED, {"id": third["id"]}, seller_a) == "FORBIDDEN"
    await shipping_api.ok(DELIVERED, {"id": first["id"]}, admin)
    (one,) = await outbox(db_admin, "shipping", "shipment.delivered")
    assert one["order_delivered"] is False
    assert await orders_shipping.deliver("shipment.delivered", one) == "applied"
    assert await status(orders_api, order, owner) == "SHIPPED"
    await shipping_api.ok(DELIVERED, {"id": third["id"]}, seller_b)
    two = (await outbox(db_admin, "shipping", "shipment.delivered"))[1]
    assert two["order_delivered"] is True
    envelope = EventEnvelope.new("shipment.delivered", two)
    assert await orders_shipping.deliver("shipment.delivered", two, envelope=envelope) == "applied"
    history = (await orders_api.ok(ORDER, {"id": order["id"]}, owner))["order"]["statusHistory"]
    assert [h["status"] for h in history] == ["PENDING", "AWAITING_PAYMENT", "PAID", "SHIPPED", "DELIVERED"]
    assert await orders_shipping.deliver("shipment.delivered", two, envelope=envelope) == "duplicate"
    assert await orders_shipping.deliver("shipment.delivered", two) == "applied"
    assert len((await orders_api.ok(ORDER, {"id": order["id"]}, owner))["order"]["statusHistory"]) == 5
    # delivering a delivered shipment again changes nothing
    await shipping_api.ok(DELIVERED, {"id": third["id"]}, admin)
    assert len(await outbox(db_admin, "shipping", "shipment.delivered")) == 2

    # Order.shipments: its owner sees both; another customer is refused
    representation = {"r": [{"__typename": "Order", "id": order["id"]}]}
    (entity,) = (await shipping_api.ok(SHIPMENTS, representation, owner))["_entities"]
    assert [(s["carrier"], s["status"], [(line["orderItemId"], line["quantity"]) for line in s["lines"]])
            for s in entity["shipments"]] == [
        ("UPS", "DELIVERED", sorted([(order["items"][0]["id"], 2), (order["items"][1]["id"], 1)])),
        ("FedEx", "DELIVERED", [(order["items"][2]["id"], 1)])]
    assert await shipping_api.error_code(SHIPMENTS, representation, token_for("CUSTOMER")) == "FORBIDDEN"


async def test_a_redelivered_order_event_changes_nothing_in_shippings_projection(
        orders_api, peers, token_issuer, saga, projections, db_admin) -> None:
    order, _, paid = await paid_order(orders_api, peers, token_issuer, saga, projections, db_admin, 8_100_002)
    envelope = EventEnvelope.new("order.paid", paid)
    assert await projections.deliver("order.paid", paid, envelope=envelope) == "applied"
    assert await projections.deliver("order.paid", paid, envelope=envelope) == "duplicate"
    (placed,) = await outbox(db_admin, "orders", "order.placed")
    assert await projections.deliver("order.placed", placed) == "applied"  # a re-sent copy: still PAID, 3 lines
    row = await db_admin.fetchrow("SELECT status, (SELECT count(*) FROM shipping.order_lines WHERE order_id = $1) n "
                                  "FROM shipping.orders WHERE order_id = $1", int(order["id"]))
    assert (row["status"], row["n"]) == ("PAID", 3)
