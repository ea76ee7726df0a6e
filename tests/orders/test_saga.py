"""The order saga: each event the orders-saga consumer handles, idempotency by inbox and by state, and the
payment-timeout sweeper (real Postgres; events delivered through the kernel's IdempotentConsumer)."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from kernel.events import EventEnvelope
from subgraphs.orders import saga as saga_module
from subgraphs.orders.consumers import consumer_specs, periodic_tasks
from tests.orders.conftest import CANCEL, ORDER, inventory_reserved, outbox, payment_failed, payment_successful, place


async def order_state(db_admin, order_id: str) -> tuple[str, str | None]:
    row = await db_admin.fetchrow("SELECT status, cancellation_reason FROM orders.orders WHERE id = $1", int(order_id))
    return row["status"], row["cancellation_reason"]


async def reserved(saga, order_id: str) -> str:
    return await saga.deliver("inventory.reserved", inventory_reserved(order_id))


async def paid(saga, order_id: str) -> str:
    return await saga.deliver("payment.successful", payment_successful(order_id))


def test_the_worker_gets_the_saga_and_flash_sale_consumers_and_the_sweeper(worker_resources) -> None:
    spec, flash, shipping = consumer_specs(worker_resources)
    assert (spec.name, spec.schema) == ("orders-saga", "orders")
    assert (flash.name, flash.schema, flash.topics) == ("orders-flash-sales", "orders", ("flashsale.purchased",))
    assert (shipping.name, shipping.schema, set(shipping.topics)) == (
        "orders-shipping", "orders", {"shipment.created", "shipment.delivered"})
    assert set(spec.topics) == {"inventory.reserved", "inventory.out_of_stock", "payment.successful",
                                "payment.failed", "payment.refunded"}
    (task,) = periodic_tasks(worker_resources)
    assert task.interval_seconds == worker_resources.settings.saga_sweep_interval_seconds


async def test_inventory_reserved_awaits_payment_and_asks_payments_to_charge(
        orders_api, customer, saga, db_admin, settings) -> None:
    order = await place(orders_api, customer())
    assert await reserved(saga, order["id"]) == "applied"
    assert await order_state(db_admin, order["id"]) == ("AWAITING_PAYMENT", None)
    (confirmed,) = await outbox(db_admin, "order.confirmed")
    assert confirmed["key"] == order["id"]
    assert confirmed["payload"]["amount"] == "45.48" and confirmed["payload"]["currency"] == "USD"
    assert confirmed["payload"]["payment"] == {"provider": "simulated", "token": "tok_visa"}
    row = await db_admin.fetchrow("SELECT step, payment_deadline, payment_token FROM orders.order_sagas")
    assert row["step"] == "AWAITING_PAYMENT" and row["payment_token"] == "tok_visa"
    expected = datetime.now(UTC) + timedelta(seconds=settings.order_payment_timeout_seconds)
    assert abs((row["payment_deadline"] - expected).total_seconds()) < 60


async def test_a_redelivered_or_repeated_event_changes_nothing(orders_api, customer, saga, db_admin) -> None:
    order = await place(orders_api, customer())
    envelope = EventEnvelope.new("inventory.reserved", {"order_id": order["id"], "items": []})
    assert await saga.deliver("inventory.reserved", {}, envelope=envelope) == "applied"
    assert await saga.deliver("inventory.reserved", {}, envelope=envelope) == "duplicate"  # inbox
    assert await reserved(saga, order["id"]) == "applied"  # a new event id, but the order is past that step
    assert len(await outbox(db_admin, "order.confirmed")) == 1
    assert await db_admin.fetchval("SELECT count(*) FROM orders.order_status_history") == 2


async def test_out_of_stock_cancels(orders_api, customer, saga, db_admin) -> None:
    order = await place(orders_api, customer())
    await saga.deliver("inventory.out_of_stock", {"order_id": order["id"], "variant_ids": ["111"]})
    assert await order_state(db_admin, order["id"]) == ("CANCELLED", "OUT_OF_STOCK")
    (cancelled,) = await outbox(db_admin, "order.cancelled")
    assert cancelled["payload"] == {"order_id": order["id"], "user_id": cancelled["payload"]["user_id"],
                                    "reason": "OUT_OF_STOCK", "previous_status": "PENDING",
                                    "items": [{"variant_id": "111", "quantity": 2},
                                              {"variant_id": "222", "quantity": 1}]}
    # no payment method is kept for an order that will never be charged
    assert await db_admin.fetchval("SELECT payment_token FROM orders.order_sagas") is None


async def test_payment_successful_pays_and_clears_the_token(orders_api, customer, saga, db_admin) -> None:
    order = await place(orders_api, customer())
    await reserved(saga, order["id"])
    await paid(saga, order["id"])
    assert await order_state(db_admin, order["id"]) == ("PAID", None)
    (event,) = await outbox(db_admin, "order.paid")
    assert event["payload"]["items"] == [{"variant_id": "111", "quantity": 2}, {"variant_id": "222", "quantity": 1}]
    row = await db_admin.fetchrow("SELECT step, payment_token, payment_deadline FROM orders.order_sagas")
    assert (row["step"], row["payment_token"], row["payment_deadline"]) == ("PAID", None, None)


async def test_payment_failed_cancels_as_declined(orders_api, customer, saga, db_admin) -> None:
    order = await place(orders_api, customer())
    await reserved(saga, order["id"])
    await saga.deliver("payment.failed", {"order_id": order["id"], "payment_id": "9", "reason": "card_declined"})
    assert await order_state(db_admin, order["id"]) == ("CANCELLED", "PAYMENT_DECLINED")
    (event,) = await outbox(db_admin, "order.cancelled")
    assert event["payload"]["previous_status"] == "AWAITING_PAYMENT"
    assert await db_admin.fetchval("SELECT payment_token FROM orders.order_sagas") is None


async def test_a_late_payment_leaves_a_cancelled_order_cancelled(orders_api, customer, saga, db_admin) -> None:
    ada = customer()
    order = await place(orders_api, ada)
    await reserved(saga, order["id"])
    await orders_api.ok(CANCEL, {"id": order["id"]}, token=ada.token)
    before = await outbox(db_admin)
    assert await paid(saga, order["id"]) == "applied"  # handled, not dead-lettered
    assert await order_state(db_admin, order["id"]) == ("CANCELLED", "CUSTOMER_CANCELLED")
    assert await outbox(db_admin) == before
    assert saga.dead_letters == []


async def test_refund_after_cancelling_a_paid_order(orders_api, customer, saga, db_admin) -> None:
    ada = customer()
    order = await place(orders_api, ada)
    await reserved(saga, order["id"])
    await paid(saga, order["id"])
    cancelled = (await orders_api.ok(CANCEL, {"id": order["id"]}, token=ada.token))["cancelOrder"]
    assert cancelled["status"] == "CANCELLED"
    (event,) = await outbox(db_admin, "order.cancelled")
    assert event["payload"]["previous_status"] == "PAID"  # payments refunds a captured payment on this
    await saga.deliver("payment.refunded", {"order_id": order["id"], "payment_id": "9", "amount": "45.48",
                                            "currency": "USD"})
    assert await order_state(db_admin, order["id"]) == ("REFUNDED", "CUSTOMER_CANCELLED")
    (refunded,) = await outbox(db_admin, "order.refunded")
    assert refunded["payload"] == {"order_id": order["id"], "user_id": str(ada.user_id)}
    history = (await orders_api.ok(ORDER, {"id": order["id"]}, token=ada.token))["order"]["statusHistory"]
    assert [h["status"] for h in history] == ["PENDING", "AWAITING_PAYMENT", "PAID", "CANCELLED", "REFUNDED"]
    assert [h["seq"] for h in history] == [1, 2, 3, 4, 5]


async def test_an_event_for_an_unknown_order_is_ignored_not_dead_lettered(saga, db_admin) -> None:
    assert await saga.deliver("payment.successful", payment_successful("123456789")) == "applied"
    assert await db_admin.fetchval("SELECT count(*) FROM orders.outbox") == 0


@pytest.mark.parametrize(("event_type", "payload", "field"), [
    ("inventory.reserved", {"order_id": "not-an-id", "items": []}, "'order_id' is not an id"),
    ("payment.successful", {"order_id": "1", "payment_id": "9", "amount": "4.5.1", "currency": "USD",
                            "provider": "simulated"}, "'amount'"),
    ("payment.failed", {"order_id": "1", "payment_id": "9"}, "'reason' is missing")])
async def test_a_malformed_event_is_parked_on_the_dlq_naming_the_field(saga, db_admin, event_type, payload,
                                                                       field) -> None:
    assert await saga.deliver(event_type, payload) == "dead-lettered"
    [(_, _, kwargs)] = saga.dead_letters
    error = dict(kwargs["headers"])["error"].decode()
    assert error.startswith(f"MalformedEvent: {event_type}: ") and field in error
    assert await db_admin.fetchval("SELECT count(*) FROM orders.outbox") == 0


async def expire(db_admin, order_id: str) -> None:
    await db_admin.execute("UPDATE orders.order_sagas SET payment_deadline = now() - interval '1 second' "
                           "WHERE order_id = $1", int(order_id))


async def test_the_sweeper_cancels_only_expired_awaiting_payment_orders(
        orders_api, customer, saga, db_admin, worker_resources) -> None:
    expired, waiting, pending, paid_order = [await place(orders_api, customer()) for _ in range(4)]
    for order in (expired, waiting, paid_order):
        await reserved(saga, order["id"])
    await paid(saga, paid_order["id"])
    await expire(db_admin, expired["id"])
    sweep = saga_module.payment_timeout_sweeper(worker_resources)
    assert await sweep() == 1
    assert await order_state(db_admin, expired["id"]) == ("CANCELLED", "PAYMENT_TIMEOUT")
    assert (await order_state(db_admin, waiting["id"]))[0] == "AWAITING_PAYMENT"
    assert (await order_state(db_admin, pending["id"]))[0] == "PENDING"
    assert (await order_state(db_admin, paid_order["id"]))[0] == "PAID"
    (event,) = await outbox(db_admin, "order.cancelled")
    assert event["payload"]["reason"] == "PAYMENT_TIMEOUT" and event["payload"]["previous_status"] == "AWAITING_PAYMENT"
    assert await sweep() == 0  # nothing left to do


async def test_two_sweepers_never_cancel_the_same_order_twice(
        orders_api, customer, saga, db_admin, worker_resources, monkeypatch) -> None:
    monkeypatch.setattr(saga_module, "SWEEP_BATCH_SIZE", 3)  # several small batches, interleaved
    orders = [await place(orders_api, customer()) for _ in range(10)]
    for order in orders:
        await reserved(saga, order["id"])
        await expire(db_admin, order["id"])
    sweep = saga_module.payment_timeout_sweeper(worker_resources)
    results = await asyncio.gather(sweep(), sweep(), sweep())
    assert sum(results) == 10
    assert len(await outbox(db_admin, "order.cancelled")) == 10
    assert await db_admin.fetchval(
        "SELECT count(*) FROM orders.order_status_history WHERE to_status = 'CANCELLED'") == 10


@pytest.mark.parametrize("late_event", ["payment.successful", "payment.failed"])
async def test_a_payment_outcome_after_the_timeout_changes_nothing(
        orders_api, customer, saga, db_admin, worker_resources, late_event) -> None:
    order = await place(orders_api, customer())
    await reserved(saga, order["id"])
    await expire(db_admin, order["id"])
    await saga_module.payment_timeout_sweeper(worker_resources)()
    late = payment_successful if late_event == "payment.successful" else payment_failed
    assert await saga.deliver(late_event, late(order["id"])) == "applied"
    assert await order_state(db_admin, order["id"]) == ("CANCELLED", "PAYMENT_TIMEOUT")
    assert len(await outbox(db_admin, "order.cancelled")) == 1
