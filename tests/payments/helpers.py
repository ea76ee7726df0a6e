"""Event payloads as orders sends them, and readers of what payments wrote."""
from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from tests.event_contracts import as_consumed


def confirmed(order_id: int, *, token: str = "tok_visa", amount: str = "42.50", currency: str = "USD",
              provider: str = "simulated", user_id: int = 7) -> dict[str, Any]:
    return {"order_id": str(order_id), "user_id": str(user_id), "amount": amount, "currency": currency,
            "payment": {"provider": provider, "token": token}}


def cancelled(order_id: int, *, reason: str = "CUSTOMER_CANCELLED", previous_status: str = "PAID",
              user_id: int = 7) -> dict[str, Any]:
    return {"order_id": str(order_id), "user_id": str(user_id), "reason": reason,
            "previous_status": previous_status, "items": [{"variant_id": "11", "quantity": 1}]}


async def outbox(db: asyncpg.Pool) -> list[dict[str, Any]]:
    """Events payments queued, oldest first: topic, key and the envelope's payload."""
    rows = await db.fetch("SELECT topic, key, envelope FROM payments.outbox ORDER BY id")
    events = [{"topic": r["topic"], "key": r["key"], "payload": orjson.loads(r["envelope"])["payload"]} for r in rows]
    for event in events:  # every payload payments wrote is one the orders saga accepts
        as_consumed(event["topic"], event["payload"])
    return events


async def payment(db: asyncpg.Pool, order_id: int) -> dict[str, Any] | None:
    row = await db.fetchrow("SELECT * FROM payments.payments WHERE order_id = $1", order_id)
    return dict(row) if row else None


async def provider_calls(db: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT idempotency_key, operation, outcome FROM payments.provider_calls ORDER BY created_at")
    return [dict(r) for r in rows]
