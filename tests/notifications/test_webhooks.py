"""Partner webhooks: an ADMIN subscribes a URL to event types and gets the signing secret once; each event is
POSTed with `NexusCart-Signature: t=<unix>,v1=<hmac>`, retried with exponential backoff, recorded, and parked
after the last attempt. The receiver is a real HTTP server in the test."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

from aiohttp import web

from nexuscart.infra import free_port
from subgraphs.notifications import delivery
from tests.notifications.conftest import consumer_for, next_id, order_placed

CREATE = """mutation($input: CreateWebhookSubscriptionInput!) { createWebhookSubscription(input: $input) {
  id url eventTypes secret createdAt } }"""
DELIVERIES = """query($id: ID!) { webhookDeliveries(subscriptionId: $id) { eventType status attempts
  lastStatusCode deliveredAt } }"""


class Receiver:
    """Answers 500 to the first `failures` POSTs, then 200; keeps every request."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.failures:
            return web.Response(status=500, text="not today")
        return web.Response(status=200, text="ok")


async def serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hooks"


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


async def test_a_receiver_failing_twice_gets_the_event_on_the_third_try_signed(consumer, api, token_for) -> None:
    receiver = Receiver(failures=2)
    runner, url = await serve(receiver)
    try:
        admin = token_for("ADMIN")
        assert await api.error_code(CREATE, {"input": {"url": url, "eventTypes": ["order.placed"]}},
                                    token_for()) == "FORBIDDEN"
        assert await api.error_code(CREATE, {"input": {"url": url, "eventTypes": ["user.registered"]}},
                                    admin) == "BAD_USER_INPUT"
        assert await api.error_code(CREATE, {"input": {"url": "ftp://x", "eventTypes": ["order.placed"]}},
                                    admin) == "BAD_USER_INPUT"
        created = (await api.ok(CREATE, {"input": {"url": url, "eventTypes": ["order.placed", "order.paid"]}},
                                admin))["createWebhookSubscription"]
        secret = created["secret"]
        assert secret.startswith("whsec_") and created["eventTypes"] == ["order.placed", "order.paid"]

        order_id = next_id()
        assert await consumer.deliver("order.placed", order_placed(order_id, next_id())) == "applied"
        assert len(receiver.requests) == 1  # the first try, right after the commit: refused
        for _ in range(500):  # the retry job, as the worker runs it (backoff 0.01 s, 0.02 s here)
            await delivery.deliver_webhooks(consumer.deps)
            if len(receiver.requests) >= 3:
                break
        assert len(receiver.requests) == 3
        for headers, body in receiver.requests:
            assert verify(secret, headers["NexusCart-Signature"], body)
            assert not verify(secret + "x", headers["NexusCart-Signature"], body)
        event = json.loads(receiver.requests[-1][1])
        assert event["type"] == "order.placed" and event["data"]["order_id"] == str(order_id)
        assert len({body for _, body in receiver.requests}) == 1  # the same event every time

        (recorded,) = (await api.ok(DELIVERIES, {"id": created["id"]}, admin))["webhookDeliveries"]
        assert (recorded["status"], recorded["attempts"], recorded["lastStatusCode"]) == ("DELIVERED", 3, 200)
        assert recorded["deliveredAt"]
        assert await delivery.deliver_webhooks(consumer.deps) == 0  # nothing sent again
        assert len(receiver.requests) == 3
        assert await api.error_code(DELIVERIES, {"id": created["id"]}, token_for()) == "FORBIDDEN"
    finally:
        await runner.cleanup()


async def test_a_receiver_that_never_accepts_is_parked_after_the_last_attempt(
        notifications_settings, service_engine, redis, api, token_for) -> None:
    receiver = Receiver(failures=10**6)
    runner, url = await serve(receiver)
    try:
        consumer = consumer_for(notifications_settings.model_copy(update={"notifications_webhook_max_attempts": 3}),
                                service_engine, redis)
        admin = token_for("ADMIN")
        created = (await api.ok(CREATE, {"input": {"url": url, "eventTypes": ["order.placed"]}},
                                admin))["createWebhookSubscription"]
        await consumer.deliver("order.placed", order_placed(next_id(), next_id()))
        for _ in range(500):
            await delivery.deliver_webhooks(consumer.deps)
            recorded = (await api.ok(DELIVERIES, {"id": created["id"]}, admin))["webhookDeliveries"][0]
            if recorded["status"] == "PARKED":
                break
        assert (recorded["status"], recorded["attempts"], recorded["lastStatusCode"]) == ("PARKED", 3, 500)
        await delivery.deliver_webhooks(consumer.deps)
        assert len(receiver.requests) == 3
    finally:
        await runner.cleanup()
