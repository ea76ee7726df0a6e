"""Preferences per category and channel (transactional email cannot be turned off), flash-sale reminders as
marketing mail with RFC 8058 one-click unsubscribe, and SMS/push through an HTTP provider only when configured."""
from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

from aiohttp import web

from nexuscart.infra import free_port
from subgraphs.notifications import service
from tests.notifications.conftest import consumer_for, next_id, order_placed, shopper

PREFERENCES = "{ notificationPreferences { preferences { category channel enabled locked available } } }"
UPDATE = """mutation($input: NotificationPreferencesInput!) { updateNotificationPreferences(input: $input) {
  preferences { category channel enabled locked available } } }"""
REMIND = "mutation($id: ID!) { remindMeOfFlashSale(saleId: $id) }"


def as_map(preferences: list[dict]) -> dict[tuple[str, str], dict]:
    return {(p["category"], p["channel"]): p for p in preferences}


async def test_transactional_email_cannot_be_turned_off_and_nothing_changes(api, token_for) -> None:
    token = token_for()
    before = (await api.ok(PREFERENCES, {}, token))["notificationPreferences"]["preferences"]
    prefs = as_map(before)
    assert prefs[("TRANSACTIONAL", "EMAIL")] == {"category": "TRANSACTIONAL", "channel": "EMAIL", "enabled": True,
                                                "locked": True, "available": True}
    assert prefs[("MARKETING", "EMAIL")]["enabled"] and not prefs[("MARKETING", "EMAIL")]["locked"]
    assert not prefs[("TRANSACTIONAL", "SMS")]["available"] and not prefs[("TRANSACTIONAL", "PUSH")]["available"]

    body = await api.raw(UPDATE, {"input": {"preferences": [
        {"category": "MARKETING", "channel": "IN_APP", "enabled": False},
        {"category": "TRANSACTIONAL", "channel": "EMAIL", "enabled": False}]}}, token)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "preferences"}
    assert (await api.ok(PREFERENCES, {}, token))["notificationPreferences"]["preferences"] == before
    assert await api.error_code(UPDATE, {"input": {"preferences": []}}) == "UNAUTHENTICATED"
    assert await api.error_code(PREFERENCES, {}) == "UNAUTHENTICATED"

    after = as_map((await api.ok(UPDATE, {"input": {"preferences": [
        {"category": "MARKETING", "channel": "EMAIL", "enabled": False},
        {"category": "TRANSACTIONAL", "channel": "EMAIL", "enabled": True}]}}, token))
        ["updateNotificationPreferences"]["preferences"])
    assert not after[("MARKETING", "EMAIL")]["enabled"] and after[("TRANSACTIONAL", "EMAIL")]["enabled"]


async def test_in_app_turned_off_stores_no_visible_notification_but_email_still_goes(consumer, api, mailbox,
                                                                                     token_for) -> None:
    user_id, address = await shopper(consumer)
    token = token_for(user_id=user_id)
    await api.ok(UPDATE, {"input": {"preferences": [
        {"category": "TRANSACTIONAL", "channel": "IN_APP", "enabled": False}]}}, token)
    await consumer.deliver("order.placed", order_placed(next_id(), user_id))
    assert len(mailbox.messages(to=address)) == 1
    page = (await api.ok("{ notifications { totalCount } }", {}, token))["notifications"]
    assert page["totalCount"] == 0


async def scheduled_sale(consumer, starts_in: timedelta) -> int:
    sale_id = next_id()
    starts = datetime.now(UTC) + starts_in
    assert await consumer.deliver("flashsale.scheduled", {
        "sale_id": str(sale_id), "variant_id": str(next_id()), "quantity": 5, "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat()}) == "applied"
    return sale_id


async def test_a_flash_sale_reminder_is_marketing_mail_with_one_click_unsubscribe(consumer, api, mailbox,
                                                                                  token_for) -> None:
    user_id, address = await shopper(consumer)
    token = token_for(user_id=user_id)
    sale_id = await scheduled_sale(consumer, timedelta(minutes=5))  # inside the default 15-minute lead time
    later_sale = await scheduled_sale(consumer, timedelta(hours=3))
    assert await api.error_code(REMIND, {"id": str(next_id())}, token) == "NOT_FOUND"
    assert await api.error_code(REMIND, {"id": str(sale_id)}) == "UNAUTHENTICATED"
    assert (await api.ok(REMIND, {"id": str(sale_id)}, token))["remindMeOfFlashSale"] is True
    assert (await api.ok(REMIND, {"id": str(sale_id)}, token))["remindMeOfFlashSale"] is True  # same as once
    assert (await api.ok(REMIND, {"id": str(later_sale)}, token))["remindMeOfFlashSale"] is True

    assert await service.announce_flash_sales(consumer.deps) == 1  # the later sale is not due yet
    assert await service.announce_flash_sales(consumer.deps) == 0  # announced once
    (mail,) = mailbox.messages(to=address)
    assert mail["Subject"].startswith("The flash sale you asked about starts ")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = mail["List-Unsubscribe"].strip("<>")
    assert link.startswith("http://notifications/unsubscribe?token=")
    assert link in mail.get_body(("plain",)).get_content()

    path = link.removeprefix("http://notifications")
    page = await api.http.get(path)  # opening the link changes nothing (mail scanners open links)
    assert page.status_code == 200 and "<form method=\"post\"" in page.text
    assert as_map((await api.ok(PREFERENCES, {}, token))["notificationPreferences"]["preferences"])[
        ("MARKETING", "EMAIL")]["enabled"]
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await api.http.post(forged, content="List-Unsubscribe=One-Click")).status_code == 400
    assert (await api.http.post("/unsubscribe?token=" + urllib.parse.quote("1.MARKETING.x"))).status_code == 400

    # RFC 8058: the mail client POSTs straight to the link, without signing in
    answer = await api.http.post(path, content="List-Unsubscribe=One-Click",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and "unsubscribed" in answer.text
    prefs = as_map((await api.ok(PREFERENCES, {}, token))["notificationPreferences"]["preferences"])
    assert not prefs[("MARKETING", "EMAIL")]["enabled"] and prefs[("TRANSACTIONAL", "EMAIL")]["enabled"]

    # The next sale's reminder is in-app only now
    next_sale = await scheduled_sale(consumer, timedelta(minutes=1))
    await api.ok(REMIND, {"id": str(next_sale)}, token)
    assert await service.announce_flash_sales(consumer.deps) == 1
    assert len(mailbox.messages(to=address)) == 1
    nodes = [e["node"] for e in (await api.ok(
        "{ notifications { edges { node { kind category deliveries { channel status } } } } }", {},
        token))["notifications"]["edges"]]
    assert [(n["kind"], n["category"]) for n in nodes] == [("FLASH_SALE_STARTING", "MARKETING")] * 2
    assert {"channel": "EMAIL", "status": "DISABLED"} in nodes[0]["deliveries"]
    assert {"channel": "EMAIL", "status": "SENT"} in nodes[1]["deliveries"]
    started = await scheduled_sale(consumer, timedelta(seconds=-1))
    assert await api.error_code(REMIND, {"id": str(started)}, token) == "CONFLICT"


async def test_push_goes_to_the_configured_provider_only_when_the_user_wants_it(
        notifications_settings, service_engine, redis, api, token_for) -> None:
    received: list[tuple[dict, str]] = []

    async def provider(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers["idempotency-key"]))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/push", provider)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        settings = notifications_settings.model_copy(update={"push_provider_url": f"http://127.0.0.1:{port}/push"})
        consumer = consumer_for(settings, service_engine, redis)
        user_id, _ = await shopper(consumer)
        await consumer.deliver("order.placed", order_placed(next_id(), user_id, number="NC-9"))
        assert received == []  # push is off until the user turns it on
        await api.ok(UPDATE, {"input": {"preferences": [
            {"category": "TRANSACTIONAL", "channel": "PUSH", "enabled": True}]}}, token_for(user_id=user_id))
        await consumer.deliver("order.placed", order_placed(next_id(), user_id, number="NC-10"))
        ((body, key),) = received
        assert body["userId"] == str(user_id) and body["title"] == "We received your order NC-10"
        assert "NC-10" in body["text"] and key.endswith("@notifications.nexuscart")
    finally:
        await runner.cleanup()
