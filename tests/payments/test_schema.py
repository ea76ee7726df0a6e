"""The payments subgraph's GraphQL surface: `Order.payment` through `_entities`, and `paymentProviders`."""
from __future__ import annotations

from sqlalchemy import event

from kernel.ids import next_id
from tests.payments.helpers import cancelled, confirmed, payment

ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Order {
  id payment { id status amount { amount currency } provider failureReason createdAt } } } }"""


def reps(*order_ids: object) -> dict:
    return {"r": [{"__typename": "Order", "id": str(o)} for o in order_ids]}


async def test_entities_give_each_order_its_payment(payments_api, deliver, db_admin) -> None:
    # given a paid order, a declined one, one payments never heard of, and one cancelled before confirmation
    paid, declined, unknown, tombstoned = next_id(), next_id(), next_id(), next_id()
    await deliver("order.confirmed", confirmed(paid, amount="5", currency="EUR"))
    await deliver("order.confirmed", confirmed(declined, token="tok_chargeDeclined"))
    await deliver("order.cancelled", cancelled(tombstoned, reason="OUT_OF_STOCK", previous_status="PENDING"))
    # when the router asks for their payments
    entities = (await payments_api.ok(ENTITIES, reps(paid, declined, unknown, tombstoned)))["_entities"]
    # then
    paid_row = await payment(db_admin, paid)
    assert entities[0]["id"] == str(paid)
    assert entities[0]["payment"] == {"id": str(paid_row["id"]), "status": "SUCCEEDED",
                                      "amount": {"amount": "5.00", "currency": "EUR"}, "provider": "simulated",
                                      "failureReason": None, "createdAt": paid_row["created_at"].isoformat()}
    assert entities[1]["payment"]["status"] == "FAILED"
    assert entities[1]["payment"]["failureReason"] == "card_declined"
    assert entities[2] == {"id": str(unknown), "payment": None}
    # a tombstone is bookkeeping, not a payment anyone made
    assert entities[3] == {"id": str(tombstoned), "payment": None}


async def test_an_order_id_that_is_not_a_number_has_no_payment(payments_api) -> None:
    entities = (await payments_api.ok(ENTITIES, reps("nonsense", "-1")))["_entities"]
    assert entities == [{"id": "nonsense", "payment": None}, {"id": "-1", "payment": None}]


async def test_payments_of_many_orders_cost_one_query(payments_api, payments_engine, deliver) -> None:
    order_ids = [next_id() for _ in range(20)]
    for order_id in order_ids:
        await deliver("order.confirmed", confirmed(order_id))
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(payments_engine.sync_engine, "before_cursor_execute", record)
    try:
        entities = (await payments_api.ok(ENTITIES, reps(*order_ids)))["_entities"]
    finally:
        event.remove(payments_engine.sync_engine, "before_cursor_execute", record)
    assert all(e["payment"]["status"] == "SUCCEEDED" for e in entities)
    assert len([s for s in statements if "payments.payments" in s]) == 1, statements


async def test_payment_providers_lists_what_checkout_accepts(payments_api) -> None:
    assert (await payments_api.ok("{ paymentProviders }"))["paymentProviders"] == ["simulated"]


async def test_sdl_contributes_payment_to_the_orders_entity(payments_api) -> None:
    sdl = (await payments_api.ok("{ _service { sdl } }"))["_service"]["sdl"]
    for fragment in ('type Order @key(fields: "id")', "payment: Payment", "type Money @shareable",
                     "failureReason: String", "status: PaymentStatus!"):
        assert fragment in sdl
