"""Orders' and others' events become an email the shopper receives (read back from a real SMTP server's files) and
an in-app notification; once per event and recipient, whatever is redelivered or crashes in between."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from sqlalchemy import text

from kernel.events import EventEnvelope
from kernel.uow import unit_of_work
from nexuscart.infra import free_port
from nexuscart.smtp_sink import FileSink
from subgraphs.notifications import channels, delivery, service
from tests.event_driver import apply_as_one_batch
from tests.notifications.conftest import MailBox, consumer_for, next_id, order_event, order_placed, shopper

NOTIFICATIONS = """query($first: Int, $after: String, $unread: Boolean) {
  notifications(first: $first, after: $after, unreadOnly: $unread) {
    totalCount unreadCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id kind category title body orderId read deliveries { channel status } } } } }"""
MARK = "mutation($id: ID!) { markNotificationRead(id: $id) { id read readAt } }"
MARK_ALL = "mutation { markAllNotificationsRead }"


async def test_a_placed_order_emails_the_shopper_and_shows_in_app(consumer, mailbox, api, token_for) -> None:
    user_id, address = await shopper(consumer)
    order_id = next_id()
    envelope = EventEnvelope.new("order.placed", order_placed(order_id, user_id, number="NC-7731",
                                                              name="Shoe <b>bold</b>"))
    assert await consumer.deliver("order.placed", envelope.payload, envelope=envelope) == "applied"

    (mail,) = mailbox.messages(to=address)
    assert mail["Subject"] == "We received your order NC-7731"
    assert mail["Message-ID"] == channels.message_id(envelope.event_id, "EMAIL", user_id)
    assert mail["List-Unsubscribe"] is None  # transactional: no unsubscribe
    plain = mail.get_body(("plain",)).get_content()
    assert "2 x Shoe <b>bold</b> (SHOE-42)  19.99 USD" in plain
    assert "Discount: -5.00 USD" in plain and "Total: 34.98 USD" in plain
    assert f"/orders/{order_id}" in plain
    html = mail.get_body(("html",)).get_content()
    assert "Shoe &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html  # autoescaped
    assert "<strong>Total: 34.98 USD</strong>" in html

    page = (await api.ok(NOTIFICATIONS, {"first": 10}, token_for(user_id=user_id)))["notifications"]
    (edge,) = page["edges"]
    assert edge["node"]["kind"] == "ORDER_PLACED" and edge["node"]["orderId"] == str(order_id)
    assert edge["node"]["title"] == "We received your order NC-7731" and not edge["node"]["read"]
    assert edge["node"]["deliveries"] == [{"channel": "EMAIL", "status": "SENT"},
                                          {"channel": "PUSH", "status": "UNAVAILABLE"},
                                          {"channel": "SMS", "status": "UNAVAILABLE"}]
    assert (page["totalCount"], page["unreadCount"]) == (1, 1)


async def test_every_order_event_reaches_its_owner_and_low_stock_reaches_admins(consumer, mailbox, api,
                                                                                 token_for) -> None:
    user_id, address = await shopper(consumer)
    admin_id, admin_address = await shopper(consumer, roles=["CUSTOMER", "ADMIN"])
    order_id = next_id()
    await consumer.deliver("order.placed", order_placed(order_id, user_id, number="NC-42"))
    line = [{"variant_id": str(next_id()), "quantity": 1}]
    for topic, payload in (
            ("order.paid", order_event("order.paid", order_id, user_id, items=line)),
            ("payment.failed", {"order_id": str(order_id), "payment_id": str(next_id()), "reason": "CARD_DECLINED"}),
            ("order.shipped", order_event("order.shipped", order_id, user_id)),
            ("order.delivered", order_event("order.delivered", order_id, user_id)),
            ("payment.refunded", {"order_id": str(order_id), "payment_id": str(next_id()), "amount": "10.00",
                                  "currency": "USD", "refunded_total": "10.00", "fully_refunded": False}),
            ("order.cancelled", order_event("order.cancelled", order_id, user_id, reason="CUSTOMER_CANCELLED",
                                            previous_status="PAID", items=line)),
            ("review.approved", {"review_id": str(next_id()), "product_id": str(next_id()), "author_id": str(user_id),
                                 "seller_id": str(admin_id), "rating": 5, "title": "Great", "verified_purchase": True,
                                 "approved_at": "2026-01-01T00:00:00+00:00", "approved_by": None}),
            ("inventory.low_stock", {"variant_id": "77", "available": 2, "threshold": 5})):
        assert await consumer.deliver(topic, payload) == "applied", topic

    subjects = [m["Subject"] for m in mailbox.messages(to=address)]
    assert subjects == ["We received your order NC-42", "Payment received for order NC-42",
                        "Payment for order NC-42 failed", "Your order NC-42 is on its way",
                        "Your order NC-42 was delivered", "Refund of 10.00 USD for order NC-42",
                        "Your order NC-42 was cancelled", "Your review is live"]
    admin_subjects = [m["Subject"] for m in mailbox.messages(to=admin_address)]
    assert admin_subjects == ["A new review of your product", "Low stock: variant 77 has 2 left"]
    cancelled = mailbox.messages(to=address)[6].get_body(("plain",)).get_content()
    assert "cancelled: you cancelled it" in cancelled and "will be refunded" in cancelled
    kinds = [e["node"]["kind"] for e in (await api.ok(NOTIFICATIONS, {"first": 20},
                                                      token_for(user_id=user_id)))["notifications"]["edges"]]
    assert kinds == ["REVIEW_APPROVED", "ORDER_CANCELLED", "REFUND_ISSUED", "ORDER_DELIVERED", "ORDER_SHIPPED",
                     "PAYMENT_FAILED", "ORDER_PAID", "ORDER_PLACED"]


async def test_an_event_that_overtakes_its_order_placed_is_held_then_notified_when_the_order_comes(
        consumer, mailbox) -> None:
    user_id, address = await shopper(consumer)
    order_id = next_id()
    line = [{"variant_id": str(next_id()), "quantity": 1}]
    assert await consumer.deliver("order.paid", order_event("order.paid", order_id, user_id, items=line)) == "applied"
    assert await consumer.deliver("order.cancelled", order_event(
        "order.cancelled", order_id, user_id, reason="CUSTOMER_CANCELLED", previous_status="PAID",
        items=line)) == "applied"
    assert mailbox.messages(to=address) == [] and consumer.dead_letters == []

    assert await consumer.deliver("order.placed", order_placed(order_id, user_id, number="NC-77")) == "applied"

    assert [m["Subject"] for m in mailbox.messages(to=address)] == [
        "We received your order NC-77", "Payment received for order NC-77", "Your order NC-77 was cancelled"]


async def test_an_event_held_while_its_order_placed_was_being_applied_is_notified_by_the_retry_job(
        consumer, mailbox, session) -> None:
    from subgraphs.notifications import repository
    from subgraphs.notifications.consumers import periodic_tasks
    user_id, address = await shopper(consumer)
    order_id = next_id()
    assert await consumer.deliver("order.paid", order_event("order.paid", order_id, user_id, items=[])) == "applied"
    # order.placed's transaction looked for held events before this one committed: its facts, and no replay.
    await repository.insert_order_facts(session, {
        "order_id": order_id, "user_id": user_id, "number": "NC-88", "currency": "USD", "subtotal": 1, "discount": 0,
        "total": 1, "placed_at": datetime.now(UTC), "lines": []})
    await session.commit()
    assert mailbox.messages(to=address) == []

    retry = next(t for t in periodic_tasks(consumer.resources) if t.name == "notifications-retry")
    await retry.run()

    assert [m["Subject"] for m in mailbox.messages(to=address)] == ["Payment received for order NC-88"]
    await retry.run()
    assert len(mailbox.messages(to=address)) == 1  # taken once


async def test_an_event_held_longer_than_the_wait_is_dropped_by_the_retry_job(consumer, mailbox, session) -> None:
    from subgraphs.notifications.consumers import periodic_tasks
    from subgraphs.notifications.service import ORDER_FACTS_WAIT
    user_id, address = await shopper(consumer)
    order_id = next_id()
    assert await consumer.deliver("order.paid", order_event("order.paid", order_id, user_id, items=[])) == "applied"
    await session.execute(text("UPDATE notifications.early_order_events "
                               "SET received_at = received_at - CAST(:wait AS interval) WHERE order_id = :order"),
                          {"wait": ORDER_FACTS_WAIT, "order": order_id})
    await session.commit()

    retry = next(t for t in periodic_tasks(consumer.resources) if t.name == "notifications-retry")
    await retry.run()

    held = await session.execute(text("SELECT count(*) FROM notifications.early_order_events WHERE order_id = :order"),
                                 {"order": order_id})
    assert held.scalar_one() == 0
    await consumer.deliver("order.placed", order_placed(order_id, user_id))
    assert [m["Subject"] for m in mailbox.messages(to=address)] == ["We received your order NC-1001"]


async def test_a_redelivered_event_sends_nothing_twice(consumer, mailbox, api, token_for, session) -> None:
    user_id, address = await shopper(consumer)
    envelope = EventEnvelope.new("order.placed", order_placed(next_id(), user_id))
    assert await consumer.deliver("order.placed", envelope.payload, envelope=envelope) == "applied"
    assert await consumer.deliver("order.placed", envelope.payload, envelope=envelope) == "duplicate"
    # Even past the inbox (a handler run again for the same event), the ledger keeps it to one.
    async with unit_of_work(consumer.resources.session_factory) as s:
        await consumer.spec.handler(s, envelope)
    assert len(mailbox.messages(to=address)) == 1
    page = (await api.ok(NOTIFICATIONS, {}, token_for(user_id=user_id)))["notifications"]
    assert page["totalCount"] == 1
    rows = (await session.execute(text("SELECT count(*) FROM notifications.deliveries WHERE recipient = :u"),
                                  {"u": user_id})).scalar_one()
    assert rows == 3  # one per outbound channel


async def test_a_crash_between_commit_and_send_is_recovered_by_the_retry_job(consumer, mailbox, session) -> None:
    user_id, address = await shopper(consumer)
    envelope = EventEnvelope.new("order.placed", order_placed(next_id(), user_id))
    # The worker dies right after the commit: the ledger row is committed, its after-commit send never runs.
    async with consumer.resources.session_factory() as s:
        await consumer.spec.handler(s, envelope)
        await s.commit()
    assert mailbox.messages(to=address) == []
    status = (await session.execute(text("SELECT status FROM notifications.deliveries WHERE recipient = :u "
                                         "AND channel = 'EMAIL'"), {"u": user_id})).scalar_one()
    assert status == "PENDING"

    assert await delivery.send_deliveries(consumer.deps) >= 1
    assert await delivery.send_deliveries(consumer.deps) == 0  # nothing left to send
    (mail,) = mailbox.messages(to=address)
    assert mail["Message-ID"] == channels.message_id(envelope.event_id, "EMAIL", user_id)


async def test_an_smtp_outage_is_retried_with_backoff_then_sent(notifications_settings, service_engine, redis,
                                                                mailbox, session) -> None:
    from tests.orders.conftest import closed_port
    with closed_port() as nowhere:
        down = consumer_for(notifications_settings.model_copy(update={"smtp_url": nowhere.replace("http", "smtp")}),
                            service_engine, redis)
        user_id, address = await shopper(down)
        assert await down.deliver("order.placed", order_placed(next_id(), user_id)) == "applied"
    row = (await session.execute(text("SELECT status, attempts, last_error FROM notifications.deliveries "
                                      "WHERE recipient = :u AND channel = 'EMAIL'"), {"u": user_id})).one()
    assert (row.status, row.attempts) == ("PENDING", 1) and row.last_error.startswith("SMTP")
    assert mailbox.messages(to=address) == []
    up = consumer_for(notifications_settings, service_engine, redis)

    sent = 0
    for _ in range(200):  # the backoff after one failure is 0.01 s here
        sent += await delivery.send_deliveries(up.deps)
        if mailbox.messages(to=address):
            break
    assert len(mailbox.messages(to=address)) == 1 and sent >= 1


async def test_mark_read_is_for_the_owner_only(consumer, api, token_for) -> None:
    user_id, _ = await shopper(consumer)
    for number in ("NC-1", "NC-2", "NC-3"):
        await consumer.deliver("order.placed", order_placed(next_id(), user_id, number=number))
    owner = token_for(user_id=user_id)
    first = (await api.ok(NOTIFICATIONS, {"first": 2}, owner))["notifications"]
    assert first["pageInfo"]["hasNextPage"] and len(first["edges"]) == 2
    rest = (await api.ok(NOTIFICATIONS, {"first": 2, "after": first["pageInfo"]["endCursor"]}, owner))
    assert [e["node"]["title"] for e in first["edges"] + rest["notifications"]["edges"]] == [
        "We received your order NC-3", "We received your order NC-2", "We received your order NC-1"]
    assert not rest["notifications"]["pageInfo"]["hasNextPage"]
    newest = first["edges"][0]["node"]["id"]

    assert await api.error_code(MARK, {"id": newest}, token_for()) == "NOT_FOUND"  # someone else's
    assert await api.error_code(MARK, {"id": newest}) == "UNAUTHENTICATED"
    assert await api.error_code(MARK, {"id": "nope"}, owner) == "BAD_USER_INPUT"
    assert await api.error_code(NOTIFICATIONS, {"first": 0}, owner) == "BAD_USER_INPUT"
    assert await api.error_code(NOTIFICATIONS, {}) == "UNAUTHENTICATED"
    assert (await api.ok(NOTIFICATIONS, {"unread": True}, owner))["notifications"]["unreadCount"] == 3

    marked = (await api.ok(MARK, {"id": newest}, owner))["markNotificationRead"]
    assert marked["read"] and marked["readAt"]
    assert (await api.ok(MARK, {"id": newest}, owner))["markNotificationRead"]["readAt"] == marked["readAt"]
    unread = (await api.ok(NOTIFICATIONS, {"unread": True}, owner))["notifications"]
    assert unread["totalCount"] == 2 and newest not in [e["node"]["id"] for e in unread["edges"]]
    assert (await api.ok(MARK_ALL, {}, token_for()))["markAllNotificationsRead"] == 0
    assert (await api.ok(MARK_ALL, {}, owner))["markAllNotificationsRead"] == 2
    assert (await api.ok(MARK_ALL, {}, owner))["markAllNotificationsRead"] == 0


async def test_a_user_nobody_told_us_about_gets_in_app_only(consumer, api, token_for) -> None:
    user_id = next_id()  # no user.registered: no address
    await consumer.deliver("order.placed", order_placed(next_id(), user_id))
    node = (await api.ok(NOTIFICATIONS, {}, token_for(user_id=user_id)))["notifications"]["edges"][0]["node"]
    assert {"channel": "EMAIL", "status": "NO_ADDRESS"} in node["deliveries"]


async def test_an_old_event_about_an_order_never_placed_here_is_skipped(consumer, mailbox, api, token_for) -> None:
    import dataclasses
    from datetime import UTC, datetime, timedelta
    user_id, address = await shopper(consumer)
    envelope = dataclasses.replace(
        EventEnvelope.new("order.paid", order_event("order.paid", next_id(), user_id, items=[])),
        timestamp=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    assert await consumer.deliver("order.paid", envelope.payload, envelope=envelope) == "applied"
    assert mailbox.messages(to=address) == []
    assert (await api.ok(NOTIFICATIONS, {}, token_for(user_id=user_id)))["notifications"]["totalCount"] == 0


class SessionCountingSink(FileSink):
    """The file sink, also remembering the SMTP session each message came in on."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.sessions: list[Any] = []  # held, so no two sessions ever share an id()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sessions.append(session)
        return await super().handle_DATA(server, session, envelope)

    def connections(self) -> int:
        return len({id(s) for s in self.sessions})


async def test_a_batch_of_paid_orders_pushes_each_live_and_sends_its_emails_over_one_smtp_connection(
        notifications_settings, service_engine, redis, tmp_path) -> None:
    sink = SessionCountingSink(tmp_path / "mail")
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        consumer = consumer_for(notifications_settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{controller.port}"}), service_engine, redis)
        user_id, address = await shopper(consumer)
        orders = [next_id() for _ in range(delivery.SEND_LEASE_ROWS + 3)]  # more than one lease's worth
        for order_id in orders:
            await consumer.deliver("order.placed", order_placed(order_id, user_id, number=f"NC-{order_id}"))
        connections_before = sink.connections()
        live = redis.pubsub()
        await live.subscribe(service.channel_name(user_id))
        line = [{"variant_id": str(next_id()), "quantity": 1}]
        paid = [EventEnvelope.new("order.paid", order_event("order.paid", order_id, user_id, items=line))
                for order_id in orders]

        assert await apply_as_one_batch(consumer.spec, consumer.resources.session_factory, paid)

        mailbox = MailBox(tmp_path / "mail", "unused")
        subjects = sorted(m["Subject"] for m in mailbox.messages(to=address) if m["Subject"].startswith("Payment"))
        assert subjects == sorted(f"Payment received for order NC-{order_id}" for order_id in orders)
        assert sink.connections() - connections_before == 1
        pushed: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while len(pushed) < len(orders):
            assert time.monotonic() < deadline, f"only {len(pushed)} of {len(orders)} live pushes arrived"
            message = await live.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:  # None: a subscribe confirmation, or nothing within the second
                pushed.append(orjson.loads(message["data"]))
        assert sorted(p["order_id"] for p in pushed) == sorted(str(order_id) for order_id in orders)
        assert {p["kind"] for p in pushed} == {"ORDER_PAID"}
        await live.aclose()
    finally:
        controller.stop()
