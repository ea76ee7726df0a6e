"""The saga watchdog (in the payment-timeout sweep): an order whose step has not moved for
SAGA_STEP_TIMEOUT_SECONDS is asked about again, and a PENDING order older than SAGA_PENDING_GIVE_UP_SECONDS is
cancelled, so a lost answer never strands an order (real Postgres; the sweep run as the worker runs it)."""
from __future__ import annotations

from subgraphs.orders import saga as saga_module
from tests.orders.conftest import inventory_reserved, outbox, place


async def _stall(db_admin, order_id: str, *, seconds: int) -> None:
    """As if `seconds` had passed since the order's step last moved (or was last asked about)."""
    await db_admin.execute("UPDATE orders.order_sagas SET updated_at = updated_at - make_interval(secs => $2) "
                           "WHERE order_id = $1", int(order_id), seconds)
    await db_admin.execute("UPDATE orders.orders SET updated_at = updated_at - make_interval(secs => $2) "
                           "WHERE id = $1", int(order_id), seconds)


async def test_a_stalled_pending_order_is_asked_about_again_once_per_step_timeout(
        orders_api, customer, db_admin, worker_resources) -> None:
    stalled, fresh = await place(orders_api, customer()), await place(orders_api, customer())
    await _stall(db_admin, stalled["id"], seconds=int(worker_resources.settings.saga_step_timeout_seconds) + 1)
    sweep = saga_module.payment_timeout_sweeper(worker_resources)
    assert await sweep() == 1

    placed = [e for e in await outbox(db_admin, "order.placed") if e["payload"]["order_id"] == stalled["id"]]
    assert len(placed) == 2  # at placeOrder, and again now: the same order, a new event id
    assert placed[0]["payload"]["items"] == placed[1]["payload"]["items"]
    assert placed[0]["event_id"] != placed[1]["event_id"]
    # marked as asked again, so inventory answers it even though it decided already (at placeOrder's call)
    assert ("reasked" not in placed[0]["payload"], placed[1]["payload"]["reasked"]) == (True, True)
    assert not [e for e in await outbox(db_admin, "order.placed") if e["payload"]["order_id"] == fresh["id"]][1:]
    assert await sweep() == 0  # asked just now: not again before another step timeout


async def test_a_stalled_awaiting_payment_order_asks_payments_again(
        orders_api, customer, saga, db_admin, worker_resources) -> None:
    order = await place(orders_api, customer())
    await saga.deliver("inventory.reserved", inventory_reserved(order["id"]))
    await _stall(db_admin, order["id"], seconds=int(worker_resources.settings.saga_step_timeout_seconds) + 1)
    assert await saga_module.payment_timeout_sweeper(worker_resources)() == 1
    confirmed = [e for e in await outbox(db_admin, "order.confirmed") if e["payload"]["order_id"] == order["id"]]
    assert len(confirmed) == 2
    assert confirmed[1]["payload"]["payment"] == confirmed[0]["payload"]["payment"]
    # once: a provider may take its time, and the payment deadline ends the wait in any case
    await _stall(db_admin, order["id"], seconds=int(worker_resources.settings.saga_step_timeout_seconds) + 1)
    assert await saga_module.payment_timeout_sweeper(worker_resources)() == 0


async def test_a_pending_order_older_than_the_payment_timeout_is_cancelled_and_its_stock_released(
        orders_api, customer, db_admin, worker_resources) -> None:
    order = await place(orders_api, customer())
    await db_admin.execute("UPDATE orders.orders SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
                           int(order["id"]), worker_resources.settings.saga_pending_give_up_seconds + 1)
    await saga_module.payment_timeout_sweeper(worker_resources)()
    row = await db_admin.fetchrow("SELECT status, cancellation_reason FROM orders.orders WHERE id = $1",
                                  int(order["id"]))
    assert (row["status"], row["cancellation_reason"]) == ("CANCELLED", "PAYMENT_TIMEOUT")
    # order.cancelled is what makes inventory release the order's stock (or refuse a late reservation)
    (cancelled,) = [e for e in await outbox(db_admin, "order.cancelled") if e["payload"]["order_id"] == order["id"]]
    assert cancelled["payload"]["previous_status"] == "PENDING"
