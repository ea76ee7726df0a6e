"""After the purchase, the whole journey through the router with every process real (issue: shipping, reviews
and notifications): a shopper orders three products with a shipping method and is charged for it; the ADMIN ships
two lines, then the third; the order goes SHIPPED -> DELIVERED; the shopper gets the emails (read back from the
SMTP sink) and the in-app notifications over the subscription; the shopper's review shows as a verified purchase
once approved and the product's rating follows; a partner webhook gets `order.paid` with a valid signature,
its receiver failing twice before it accepts."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid

from aiohttp import web

from nexuscart.infra import free_port
from tests.e2e.test_commerce import ADD_TO_CART, eventually, stocked_variant, wait_for_status
from tests.e2e.test_notifications import mails_to, open_stream
from tests.e2e.test_reviews import CREATE, MODERATE, PRODUCT
from tests.e2e.test_shipping import CART, DELIVERED, METHOD, METHODS, ORDER, SHIP, US, ZONE

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id number
  shippingTotal { amount } total { amount } items { id } } }"""
WEBHOOK = """mutation($input: CreateWebhookSubscriptionInput!) { createWebhookSubscription(input: $input) {
  id secret eventTypes } }"""


class FlakyReceiver:
    """A partner's webhook endpoint on a real local HTTP server: answers 500 to its first two requests about the
    watched order, then 200; keeps every request it got."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.watched = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.watched and self.watched in body.decode():
            self.requests.append((dict(request.headers), body))
            if len(self.requests) <= 2:
                return web.Response(status=500, text="receiver down")
        return web.Response(status=200, text="ok")


@contextlib.asynccontextmanager
async def webhook_receiver():
    receiver = FlakyReceiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver, f"http://127.0.0.1:{port}/hooks"
    finally:
        await runner.cleanup()


def signature_is_valid(header: str, body: bytes, secret: str) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


async def test_from_a_shipped_order_to_a_verified_review_with_mail_live_notifications_and_a_webhook(
        router, platform, make_user) -> None:
    _, admin = await make_user("ADMIN")
    address = f"journey-{uuid.uuid4().hex[:8]}@example.com"
    _, ada = await make_user(email=address)
    _, bob = await make_user()
    stocked = [await stocked_variant(router, admin, 10, price=price) for price in ("20.00", "15.00", "5.00")]
    zone = (await router.ok(ZONE, {"input": {"name": f"US {uuid.uuid4().hex[:4]}", "countries": ["US"]}},
                            admin))["createShippingZone"]["id"]
    method = (await router.ok(METHOD, {"z": zone, "input": {"name": "Ground", "carrier": "UPS", "kind": "FLAT",
                                                            "price": "6.50", "minDays": 2, "maxDays": 4}},
                              admin))["createShippingMethod"]["id"]

    async with webhook_receiver() as (receiver, url):
        secret = (await router.ok(WEBHOOK, {"input": {"url": url, "eventTypes": ["order.paid"]}},
                                  admin))["createWebhookSubscription"]["secret"]
        received: list[dict] = []
        ws = await open_stream(platform.router_url, ada)

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                assert message["type"] == "next", message
                received.append(message["payload"]["data"]["notificationReceived"])

        reader = asyncio.create_task(read())
        try:
            # Ordered with a shipping method, and charged for it
            for _, variant in stocked:
                await router.ok(ADD_TO_CART, {"cartId": None, "v": variant, "q": 1}, ada)
            cart = (await router.ok(CART, {}, ada))["cart"]
            offered = (await router.ok(METHODS, {"cart": cart["id"], "a": US}, ada))["shippingMethods"]
            assert [(m["id"], m["price"]["amount"]) for m in offered] == [(method, "6.50")]
            order = (await router.ok(PLACE, {"input": {
                "shippingAddress": US, "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
                "idempotencyKey": uuid.uuid4().hex, "shippingMethodId": method}}, ada))["placeOrder"]
            receiver.watched = order["id"]
            assert (order["shippingTotal"]["amount"], order["total"]["amount"]) == ("6.50", "46.50")
            await wait_for_status(router, ada, order["id"], {"PAID"})
            paid = (await router.ok(ORDER, {"id": order["id"]}, ada))["order"]
            assert paid["payment"]["amount"]["amount"] == "46.50"

            # Two lines shipped, then the third; both deliveries make it DELIVERED
            items = [item["id"] for item in order["items"]]

            def shipment(picks: list[str], tracking: str) -> dict:
                return {"input": {"orderId": order["id"], "carrier": "UPS", "trackingNumber": tracking,
                                  "lines": [{"orderItemId": item, "quantity": 1} for item in picks]}}

            async def first_shipment() -> dict | None:
                body = await router.raw(SHIP, shipment(items[:2], "1Z999AA10000000001"), admin)
                if body.get("errors"):  # until shipping has consumed order.placed and order.paid
                    assert body["errors"][0]["extensions"]["code"] in ("NOT_FOUND", "CONFLICT"), body
                    return None
                return body["data"]["createShipment"]

            first = await eventually(first_shipment, what="shipping to learn the paid order")
            await wait_for_status(router, ada, order["id"], {"SHIPPED"})
            second = (await router.ok(SHIP, shipment(items[2:], "1Z999AA10000000002"), admin))["createShipment"]
            await router.ok(DELIVERED, {"id": first["id"]}, admin)
            await router.ok(DELIVERED, {"id": second["id"]}, admin)
            await wait_for_status(router, ada, order["id"], {"DELIVERED"})

            # In-app, live over the subscription: every step after the order was placed (a stream carries what
            # happens once the router has opened it upstream, and placeOrder may come first)
            async def all_pushed() -> bool:
                assert not reader.done(), reader
                kinds = {n["kind"] for n in received if n["orderId"] == order["id"]}
                return {"ORDER_PAID", "ORDER_SHIPPED", "ORDER_DELIVERED"} <= kinds

            try:
                await eventually(all_pushed, what="the order's notifications over notificationReceived")
            except AssertionError:
                raise AssertionError(f"pushed: {[(n['kind'], n['orderId']) for n in received]}") from None
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()

        stored = (await router.ok("{ notifications(first: 10) { edges { node { kind orderId } } } }", {},
                                  ada))["notifications"]["edges"]
        assert [e["node"]["kind"] for e in stored if e["node"]["orderId"] == order["id"]] == [
            "ORDER_DELIVERED", "ORDER_SHIPPED", "ORDER_PAID", "ORDER_PLACED"]

        # The emails, read back from the SMTP sink, the shipped one with its tracking link
        subjects = {f"We received your order {order['number']}", f"Payment received for order {order['number']}",
                    f"Your order {order['number']} is on its way", f"Your order {order['number']} was delivered"}

        async def mailed() -> list | None:
            mails = mails_to(platform.smtp_sink.mail_dir, address)
            return mails if subjects <= {m["Subject"] for m in mails} else None

        mails = await eventually(mailed, what="the order's emails in the SMTP sink")
        shipped = next(m for m in mails if m["Subject"].endswith("is on its way"))
        assert "https://www.ups.com/track?tracknum=1Z999AA10000000001" in shipped.get_body(("plain",)).get_content()

        # The partner's endpoint failed twice, then got order.paid, signed with its secret
        async def accepted() -> bool:
            return len(receiver.requests) >= 3

        await eventually(accepted, within=90, what="the webhook's third attempt (the first two answered 500)")
        headers, body = receiver.requests[2]
        assert headers["NexusCart-Event-Type"] == "order.paid"
        assert signature_is_valid(headers["NexusCart-Signature"], body, secret)
        assert not signature_is_valid(headers["NexusCart-Signature"], body, "whsec_someone_else")
        assert len({h["NexusCart-Event-Id"] for h, _ in receiver.requests}) == 1  # the same event, retried

    # The shopper reviews one product: verified (she bought it), public once approved, and in the rating
    product_id = stocked[0][0]
    review = (await router.ok(CREATE, {"input": {"productId": product_id, "rating": 5, "title": "Arrived fast",
                                                 "body": "Well packed."}}, ada))["createReview"]
    assert review["status"] == "PENDING"
    await router.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)

    async def verified_and_public() -> dict | None:
        product = (await router.ok(PRODUCT, {"id": product_id}, bob))["product"]
        nodes = [edge["node"] for edge in product["reviews"]["edges"]]
        return product if nodes and nodes[0]["verifiedPurchase"] else None

    public = await eventually(verified_and_public, what="the approved review, verified by the paid order")
    assert public["rating"] == {"average": 5.0, "count": 1, "histogram": [0, 0, 0, 0, 1]}
    assert [edge["node"]["title"] for edge in public["reviews"]["edges"]] == ["Arrived fast"]
