"""Which outboxes a relay round reads: those a NOTIFY named since the last round, a schema whose batch was full,
and every one at start, after a failure or a broker check, on an unknown NOTIFY and on the idle poll. A schema
left out here would strand its events until the idle poll; one read needlessly costs a transaction."""
from __future__ import annotations

from workers.outbox_relay import SchemasDue

SCHEMAS = ["users", "orders", "payments", "shipping"]


def test_every_outbox_is_read_at_start_and_then_only_those_notified() -> None:
    due = SchemasDue(SCHEMAS)
    assert due.take() == SCHEMAS
    assert due.take() == []
    due.notified("shipping")
    due.notified("orders")
    due.notified("orders")
    assert due.wake.is_set()
    assert due.take() == ["orders", "shipping"]  # in the configured order, each once
    assert not due.wake.is_set()


def test_a_notify_during_a_round_makes_its_schema_due_for_the_next() -> None:
    due = SchemasDue(SCHEMAS)
    due.take()
    due.notified("payments")
    round_ = due.take()
    due.notified("payments")  # committed while the round read the outbox
    assert round_ == ["payments"]
    assert due.wake.is_set() and due.take() == ["payments"]


def test_a_full_batch_an_unknown_notify_and_the_safety_net_make_schemas_due() -> None:
    due = SchemasDue(SCHEMAS)
    due.take()
    due.again("users")
    assert due.take() == ["users"]
    due.notified("a schema this relay does not know")
    assert due.take() == SCHEMAS
    due.all()
    assert due.take() == SCHEMAS
