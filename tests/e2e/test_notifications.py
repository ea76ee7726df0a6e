"""Notifications end to end, through the router and real processes: a shopper follows `notificationReceived` over
WebSocket, buys something, and gets the in-app notifications live and the emails in the platform's SMTP sink (the
.eml files the launcher's sink writes when SMTP_URL is unset); nobody else can touch them, and anonymous callers
are refused."""
from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import uuid
from email.message import EmailMessage
from pathlib import Path

import websockets

from tests.e2e.test_commerce import ADD_TO_CART, eventually, place_order, stocked_variant, wait_for_status

LIVE = "subscription { notificationReceived { id kind title orderId read } }"
NOTIFICATIONS = """{ notifications(first: 10) { totalCount unreadCount
  edges { node { id kind title orderId read deliveries { channel status } } } } }"""
MARK = "mutation($id: ID!) { markNotificationRead(id: $id) { id read } }"


def mails_to(mail_dir: Path, address: str) -> list[EmailMessage]:
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            found.append(message)
    return found  # type: ignore[return-value]


async def open_stream(router_url: str, token: str | None):
    ws = await websockets.connect(router_url.replace("http://", "ws://"), subprotocols=["graphql-transport-ws"],
                                  open_timeout=60)
    await ws.send(json.dumps({"type": "connection_init",
                              "payload": {"authorization": f"Bearer {token}"} if token else {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": LIVE}}))
    return ws


async def test_a_shopper_gets_live_in_app_notifications_and_emails(router, platform, make_user) -> None:
    assert platform.smtp_sink is not None, "the launcher starts an SMTP sink when SMTP_URL is unset"
    _, admin = await make_user("ADMIN")
    address = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    _, ada = await make_user(email=address)
    _, bob = await make_user()
    _, variant_id = await stocked_variant(router, admin, 5, price="12.50")

    received: list[dict] = []
    ws = await open_stream(platform.router_url, ada)
    try:
        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                assert message["type"] == "next", message
                received.append(message["payload"]["data"]["notificationReceived"])

        reader = asyncio.create_task(read())
        await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 2}, ada)
        order = await place_order(router, ada)
        await wait_for_status(router, ada, order["id"], {"PAID"})

        async def paid_pushed() -> bool:
            assert not reader.done() or reader.result() is None, reader
            return any(n["kind"] == "ORDER_PAID" for n in received)

        await eventually(paid_pushed, what="the ORDER_PAID notification over the subscription")
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    finally:
        await ws.close()
    live = next(n for n in received if n["kind"] == "ORDER_PAID")
    assert live["orderId"] == order["id"] and order["number"] in live["title"] and not live["read"]

    async def both_mails() -> list[EmailMessage] | None:
        mails = mails_to(platform.smtp_sink.mail_dir, address)
        return mails if len(mails) >= 2 else None

    mails = await eventually(both_mails, what="the order's two emails in the SMTP sink")
    assert sorted(m["Subject"] for m in mails) == sorted([f"We received your order {order['number']}",
                                                          f"Payment received for order {order['number']}"])
    placed = next(m for m in mails if m["Subject"].startswith("We received"))
    assert "Total: 25.00 USD" in placed.get_body(("plain",)).get_content()

    listed = (await router.ok(NOTIFICATIONS, {}, ada))["notifications"]
    kinds = [e["node"]["kind"] for e in listed["edges"]]
    assert kinds == ["ORDER_PAID", "ORDER_PLACED"] and listed["unreadCount"] == 2
    assert {"channel": "EMAIL", "status": "SENT"} in listed["edges"][0]["node"]["deliveries"]
    newest = listed["edges"][0]["node"]["id"]
    assert await router.error_code(MARK, {"id": newest}, bob) == "NOT_FOUND"
    assert (await router.ok(MARK, {"id": newest}, ada))["markNotificationRead"] == {"id": newest, "read": True}
    assert (await router.ok("mutation { markAllNotificationsRead }", {}, ada))["markAllNotificationsRead"] == 1
    assert (await router.ok(NOTIFICATIONS, {}, bob))["notifications"]["totalCount"] == 0
    assert len(mails_to(platform.smtp_sink.mail_dir, address)) == 2  # nothing sent twice


async def test_anonymous_callers_are_refused(router, platform) -> None:
    assert await router.error_code(NOTIFICATIONS) == "UNAUTHENTICATED"
    ws = await open_stream(platform.router_url, None)
    try:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
    finally:
        await ws.close()
    errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
    assert errors and errors[0]["extensions"]["code"] == "UNAUTHENTICATED", message
