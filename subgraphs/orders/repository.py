"""SQL of the orders domain: idempotent creation, conditional status updates, keyset pages, the sweep lock.

Every write path is one statement where it can be (data-modifying CTEs), because placeOrder and the saga steps
are the platform's hot paths and each statement is a round trip plus driver overhead on a shared CPU. Those CTEs
are text() (Core would spell them less clearly); the reads are Core over the tables of models.py.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import BigInteger, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of
from subgraphs.orders.models import (
    SCHEMA,
    HistoryRecord,
    OrderItemRecord,
    OrderRecord,
    OrderStatus,
    order_items,
    order_sagas,
    order_status_history,
    orders,
)

_ORDER_COLUMNS = (orders.c.id, orders.c.user_id, orders.c.number, orders.c.status, orders.c.status_seq,
                  orders.c.cancellation_reason, orders.c.cart_id, orders.c.idempotency_key,
                  orders.c.request_fingerprint, orders.c.currency, orders.c.subtotal, orders.c.discount,
                  orders.c.total, orders.c.shipping_address, orders.c.created_at, orders.c.updated_at,
                  orders.c.coupon_code, orders.c.shipping_total, orders.c.shipping_method_id)


def _json(value: Any) -> Any:
    # The text() statements skip SQLAlchemy's JSON result processing, so jsonb may arrive as text.
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def _order(row: Any) -> OrderRecord:
    m = row._mapping
    return OrderRecord(
        id=m["id"], user_id=m["user_id"], number=m["number"], status=OrderStatus(m["status"]),
        status_seq=m["status_seq"], cancellation_reason=m["cancellation_reason"], cart_id=m["cart_id"],
        idempotency_key=m["idempotency_key"], request_fingerprint=bytes(m["request_fingerprint"]),
        currency=m["currency"], subtotal=m["subtotal"], discount=m["discount"], total=m["total"],
        shipping_address=_json(m["shipping_address"]), created_at=m["created_at"], updated_at=m["updated_at"],
        coupon_code=m["coupon_code"], shipping_total=m["shipping_total"],
        shipping_method_id=m["shipping_method_id"])


def _history(row: Any) -> HistoryRecord:
    m = row._mapping
    return HistoryRecord(order_id=m["order_id"], seq=m["seq"],
                         from_status=OrderStatus(m["from_status"]) if m["from_status"] else None,
                         to_status=OrderStatus(m["to_status"]), reason=m["reason"], at=m["at"])


# ---- creation ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class NewOrder:
    id: int
    user_id: int
    cart_id: str | None
    idempotency_key: str
    request_fingerprint: bytes
    currency: str
    subtotal: Decimal
    discount: Decimal
    total: Decimal
    shipping_address: dict[str, Any]
    payment_provider: str
    payment_token: str
    items: Sequence[OrderItemRecord]
    coupon_code: str | None = None
    shipping_total: Decimal = Decimal("0.00")
    shipping_method_id: int | None = None


# text(): a data-modifying CTE on placeOrder's hot path; Core would spell it less clearly.
# One round trip: the order, its items (one multi-row insert from arrays), the first history row and the saga
# row. ON CONFLICT on (user_id, idempotency_key) makes a concurrent duplicate wait for the winner's commit and
# then insert nothing at all (every child insert selects FROM o, which is then empty).
_INSERT_ORDER = text(f"""
WITH o AS (
    INSERT INTO {SCHEMA}.orders (id, user_id, number, status, status_seq, cart_id, idempotency_key,
                                 request_fingerprint, currency, subtotal, discount, total, shipping_address,
                                 coupon_code, shipping_total, shipping_method_id)
    SELECT CAST(:id AS bigint), CAST(:user_id AS bigint),
           'NC-' || lpad(q.n::text, greatest(8, length(q.n::text)), '0'), 'PENDING', 1, CAST(:cart_id AS text),
           CAST(:idempotency_key AS text), CAST(:fingerprint AS bytea), CAST(:currency AS text),
           CAST(:subtotal AS numeric), CAST(:discount AS numeric), CAST(:total AS numeric),
           CAST(:shipping_address AS jsonb), CAST(:coupon_code AS text), CAST(:shipping_total AS numeric),
           CAST(:shipping_method_id AS bigint)
    FROM (SELECT nextval('{SCHEMA}.order_number_seq') AS n) q
    -- No conflict target: every unique index arbitrates. Two requests with one idempotency key that redeemed a
    -- coupon carry the same order id (promotions answers the first request's), so the loser may collide on the
    -- primary key as well as on the key; either way it inserts nothing and answers with the winner's order.
    ON CONFLICT DO NOTHING
    RETURNING id, number, created_at, updated_at
), i AS (
    INSERT INTO {SCHEMA}.order_items (order_id, id, variant_id, product_id, sku, name, quantity, unit_price,
                                      line_total)
    SELECT o.id, x.id, x.variant_id, x.product_id, x.sku, x.name, x.quantity, x.unit_price, x.line_total
    FROM o, unnest(CAST(:item_ids AS bigint[]), CAST(:variant_ids AS bigint[]), CAST(:product_ids AS bigint[]),
                   CAST(:skus AS text[]), CAST(:names AS text[]), CAST(:quantities AS integer[]),
                   CAST(:unit_prices AS numeric[]), CAST(:line_totals AS numeric[]))
         AS x(id, variant_id, product_id, sku, name, quantity, unit_price, line_total)
), h AS (
    INSERT INTO {SCHEMA}.order_status_history (order_id, seq, from_status, to_status, reason, at)
    SELECT o.id, 1, NULL, 'PENDING', NULL, o.created_at FROM o
), s AS (
    INSERT INTO {SCHEMA}.order_sagas (order_id, user_id, step, payment_provider, payment_token)
    SELECT o.id, CAST(:user_id AS bigint), 'PENDING', CAST(:provider AS text), CAST(:token AS text) FROM o
)
SELECT id, number, created_at, updated_at FROM o
""")


async def insert_order_if_key_free(session: AsyncSession, new: NewOrder) -> OrderRecord | None:
    """The created order, or None when this user already has an order with this idempotency key."""
    items = new.items
    row = (await session.execute(_INSERT_ORDER, {
        "id": new.id, "user_id": new.user_id, "cart_id": new.cart_id, "idempotency_key": new.idempotency_key,
        "fingerprint": new.request_fingerprint, "currency": new.currency, "subtotal": new.subtotal,
        "discount": new.discount, "total": new.total,
        "shipping_address": orjson.dumps(new.shipping_address).decode(),
        "item_ids": [i.id for i in items], "variant_ids": [i.variant_id for i in items],
        "product_ids": [i.product_id for i in items], "skus": [i.sku for i in items],
        "names": [i.name for i in items], "quantities": [i.quantity for i in items],
        "unit_prices": [i.unit_price for i in items], "line_totals": [i.line_total for i in items],
        "provider": new.payment_provider, "token": new.payment_token, "coupon_code": new.coupon_code,
        "shipping_total": new.shipping_total, "shipping_method_id": new.shipping_method_id,
    })).first()
    if row is None:
        return None
    return OrderRecord(
        id=new.id, user_id=new.user_id, number=row.number, status=OrderStatus.PENDING, status_seq=1,
        cancellation_reason=None, cart_id=new.cart_id, idempotency_key=new.idempotency_key,
        request_fingerprint=new.request_fingerprint, currency=new.currency, subtotal=new.subtotal,
        discount=new.discount, total=new.total, shipping_address=new.shipping_address,
        created_at=row.created_at, updated_at=row.updated_at, coupon_code=new.coupon_code,
        shipping_total=new.shipping_total, shipping_method_id=new.shipping_method_id)


# placeOrder's replay check: built once, so each call only binds its values.
_ORDER_BY_KEY = select(*_ORDER_COLUMNS).where(orders.c.user_id == bindparam("user_id"),
                                              orders.c.idempotency_key == bindparam("key"))


async def get_order_by_key(session: AsyncSession, user_id: int, idempotency_key: str) -> OrderRecord | None:
    row = (await session.execute(_ORDER_BY_KEY, {"user_id": user_id, "key": idempotency_key})).first()
    return _order(row) if row else None


# ---- reads ------------------------------------------------------------------------------------------------

_ORDER_BY_ID = select(*_ORDER_COLUMNS).where(orders.c.id == bindparam("id"))  # every saga step reads one


async def get_order(session: AsyncSession, order_id: int) -> OrderRecord | None:
    row = (await session.execute(_ORDER_BY_ID, {"id": order_id})).first()
    return _order(row) if row else None


async def orders_by_ids(session: AsyncSession, order_ids: Sequence[int]) -> list[OrderRecord]:
    rows = await session.execute(select(*_ORDER_COLUMNS).where(any_of(orders.c.id, order_ids, BigInteger)))
    return [_order(r) for r in rows]


async def items_by_order_ids(session: AsyncSession, order_ids: Sequence[int]) -> list[OrderItemRecord]:
    rows = await session.execute(
        select(order_items).where(any_of(order_items.c.order_id, order_ids, BigInteger))
        .order_by(order_items.c.order_id, order_items.c.id))
    return [OrderItemRecord(**r._mapping) for r in rows]


async def history_by_order_ids(session: AsyncSession, order_ids: Sequence[int], *,
                               after_seq: int = 0) -> list[HistoryRecord]:
    h = order_status_history
    rows = await session.execute(
        select(h.c.order_id, h.c.seq, h.c.from_status, h.c.to_status, h.c.reason, h.c.at)
        .where(any_of(h.c.order_id, order_ids, BigInteger), h.c.seq > after_seq)
        .order_by(h.c.order_id, h.c.seq))
    return [_history(r) for r in rows]


async def user_orders_page(session: AsyncSession, user_id: int, *, status: str | None, before_id: int | None,
                           limit: int) -> list[OrderRecord]:
    """Newest first (Snowflake ids are time-ordered); keyset on id, so deep pages cost the same as the first."""
    stmt = select(*_ORDER_COLUMNS).where(orders.c.user_id == user_id)
    if status is not None:
        stmt = stmt.where(orders.c.status == status)
    if before_id is not None:
        stmt = stmt.where(orders.c.id < before_id)
    rows = await session.execute(stmt.order_by(orders.c.id.desc()).limit(limit))
    return [_order(r) for r in rows]


async def count_user_orders(session: AsyncSession, user_id: int, *, status: str | None) -> int:
    stmt = select(func.count()).select_from(orders).where(orders.c.user_id == user_id)
    if status is not None:
        stmt = stmt.where(orders.c.status == status)
    return (await session.execute(stmt)).scalar_one()


# ---- transitions ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class AppliedTransition:
    order_id: int
    user_id: int
    seq: int
    at: datetime
    total: Decimal
    currency: str
    payment_provider: str | None
    payment_token: str | None
    items: list[dict[str, Any]]  # [{variant_id, quantity}] as event payloads carry them


# text(): a data-modifying CTE on the saga's hot path (every step), one round trip; Core would say it less clearly.
# The conditional UPDATE is the arbiter: `status = :from` means of two concurrent transitions out of one
# status, the second waits for the first's row lock, re-checks, matches nothing and loses. The history row,
# the saga step and the item list for the event ride along in the same statement.
_TRANSITION = text(f"""
WITH u AS (
    UPDATE {SCHEMA}.orders
    SET status = CAST(:to AS text), status_seq = status_seq + 1, updated_at = now(),
        cancellation_reason = CASE WHEN CAST(:to AS text) = 'CANCELLED' THEN CAST(:reason AS text)
                                   ELSE cancellation_reason END
    WHERE id = CAST(:id AS bigint) AND status = CAST(:from AS text)
    RETURNING id, user_id, status_seq, total, currency, updated_at
), h AS (
    INSERT INTO {SCHEMA}.order_status_history (order_id, seq, from_status, to_status, reason, at)
    SELECT id, status_seq, CAST(:from AS text), CAST(:to AS text), CAST(:reason AS text), updated_at FROM u
), s AS (
    UPDATE {SCHEMA}.order_sagas g
    SET step = CAST(:to AS text), updated_at = now(),
        payment_deadline = CASE WHEN CAST(:to AS text) = 'AWAITING_PAYMENT'
                                THEN now() + CAST(:timeout AS double precision) * interval '1 second' END,
        -- The token is only needed to emit order.confirmed; it is not kept a moment longer.
        payment_token = CASE WHEN CAST(:to AS text) = 'AWAITING_PAYMENT' THEN g.payment_token END
    FROM u WHERE g.order_id = u.id
    RETURNING g.payment_provider, g.payment_token
)
SELECT u.id, u.user_id, u.status_seq, u.total, u.currency, u.updated_at, s.payment_provider, s.payment_token,
       (SELECT coalesce(json_agg(json_build_object('variant_id', i.variant_id::text, 'quantity', i.quantity)
                                 ORDER BY i.id), '[]'::json)
        FROM {SCHEMA}.order_items i WHERE i.order_id = u.id) AS items
FROM u LEFT JOIN s ON true
""")


async def apply_transition(session: AsyncSession, order_id: int, *, from_status: str, to_status: str,
                           reason: str | None, payment_timeout_seconds: float) -> AppliedTransition | None:
    """None when the order is not (any more) in `from_status`."""
    row = (await session.execute(_TRANSITION, {
        "id": order_id, "from": from_status, "to": to_status, "reason": reason,
        "timeout": float(payment_timeout_seconds)})).first()
    if row is None:
        return None
    return AppliedTransition(order_id=row.id, user_id=row.user_id, seq=row.status_seq, at=row.updated_at,
                             total=row.total, currency=row.currency, payment_provider=row.payment_provider,
                             payment_token=row.payment_token, items=_json(row.items))


async def lock_expired_awaiting_payment(session: AsyncSession, limit: int) -> list[int]:
    """Orders past their payment deadline, locked; rows another sweeper holds are skipped, not waited for.
    The lock is on the order row because the saga steps lock the order first too (no lock-order deadlock)."""
    # text(): the literal 'AWAITING_PAYMENT' lets a generic plan use the partial index order_sagas_deadline_idx,
    # which a bound parameter would not; and FOR UPDATE OF o SKIP LOCKED reads plainly as SQL.
    rows = await session.execute(
        text(f"SELECT o.id FROM {SCHEMA}.order_sagas s "
             f"JOIN {SCHEMA}.orders o ON o.user_id = s.user_id AND o.id = s.order_id "
             f"WHERE s.step = 'AWAITING_PAYMENT' AND s.payment_deadline <= now() "
             f"AND o.status = 'AWAITING_PAYMENT' "
             f"ORDER BY s.payment_deadline LIMIT CAST(:limit AS integer) FOR UPDATE OF o SKIP LOCKED"),
        {"limit": limit})
    return [r.id for r in rows]


async def lock_stalled_sagas(session: AsyncSession, step: str, stalled_seconds: float, limit: int, *,
                             once: bool = False) -> list[int]:
    """Orders still in `step` whose saga has not moved (nor been asked about again) for `stalled_seconds`,
    locked like `lock_expired_awaiting_payment` (order row, SKIP LOCKED). `once`: only orders not asked about
    since they entered the step (a transition stamps the order and its saga alike; `touch_saga` only the saga)."""
    # text(): as above, FOR UPDATE OF o SKIP LOCKED over the join; order_sagas_in_flight_idx serves the scan.
    rows = await session.execute(
        text(f"SELECT o.id FROM {SCHEMA}.order_sagas s "
             f"JOIN {SCHEMA}.orders o ON o.user_id = s.user_id AND o.id = s.order_id "
             f"WHERE s.step = CAST(:step AS text) AND s.step IN ('PENDING', 'AWAITING_PAYMENT') "
             f"AND s.updated_at <= now() - CAST(:seconds AS double precision) * interval '1 second' "
             f"AND o.status = CAST(:step AS text) AND (NOT CAST(:once AS boolean) OR s.updated_at <= o.updated_at) "
             f"ORDER BY s.updated_at LIMIT CAST(:limit AS integer) FOR UPDATE OF o, s SKIP LOCKED"),
        {"step": step, "seconds": float(stalled_seconds), "limit": limit, "once": once})
    return [r.id for r in rows]


async def lock_abandoned_pending(session: AsyncSession, older_than_seconds: float, limit: int) -> list[int]:
    """PENDING orders placed more than `older_than_seconds` ago, locked like the others (order row, SKIP LOCKED)."""
    # text(): FOR UPDATE SKIP LOCKED, as above.
    rows = await session.execute(
        text(f"SELECT o.id FROM {SCHEMA}.order_sagas s "
             f"JOIN {SCHEMA}.orders o ON o.user_id = s.user_id AND o.id = s.order_id "
             f"WHERE s.step = 'PENDING' AND o.status = 'PENDING' "
             f"AND o.created_at <= now() - CAST(:seconds AS double precision) * interval '1 second' "
             f"ORDER BY o.created_at LIMIT CAST(:limit AS integer) FOR UPDATE OF o, s SKIP LOCKED"),
        {"seconds": float(older_than_seconds), "limit": limit})
    return [r.id for r in rows]


async def touch_saga(session: AsyncSession, order_id: int) -> SagaRecord | None:
    """Record that the watchdog asked about the order's step now; returns the saga row (what a re-sent event
    needs)."""
    row = (await session.execute(
        update(order_sagas).where(order_sagas.c.order_id == order_id).values(updated_at=func.now())
        .returning(order_sagas.c.order_id, order_sagas.c.user_id, order_sagas.c.step,
                   order_sagas.c.payment_provider, order_sagas.c.payment_token))).first()
    return None if row is None else SagaRecord(order_id=row.order_id, user_id=row.user_id, step=row.step,
                                                payment_provider=row.payment_provider,
                                                payment_token=row.payment_token)


@dataclasses.dataclass(frozen=True, slots=True)
class SagaRecord:
    order_id: int
    user_id: int
    step: str
    payment_provider: str | None
    payment_token: str | None


# ---- flash-sale orders ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class NewFlashSaleOrder:
    id: int                      # the reservation id: promotions assigned it, so every retry names one order
    user_id: int
    flash_sale_id: int
    idempotency_key: str
    request_fingerprint: bytes
    currency: str
    item: OrderItemRecord


# text(): a data-modifying CTE on the flash-sale order path (a sale's burst of purchases), like _INSERT_ORDER.
# Like _INSERT_ORDER, one round trip; the order starts AWAITING_PAYMENT with its payment deadline running, so
# the payment-timeout sweeper cancels it (and promotions returns the unit to the sale) if nobody pays.
_INSERT_FLASH_SALE_ORDER = text(f"""
WITH o AS (
    INSERT INTO {SCHEMA}.orders (id, user_id, number, status, status_seq, cart_id, idempotency_key,
                                 request_fingerprint, currency, subtotal, discount, total, shipping_address,
                                 flash_sale_id)
    SELECT CAST(:id AS bigint), CAST(:user_id AS bigint),
           'NC-' || lpad(q.n::text, greatest(8, length(q.n::text)), '0'), 'AWAITING_PAYMENT', 1, NULL,
           CAST(:idempotency_key AS text), CAST(:fingerprint AS bytea), CAST(:currency AS text),
           CAST(:total AS numeric), 0, CAST(:total AS numeric), NULL, CAST(:flash_sale_id AS bigint)
    FROM (SELECT nextval('{SCHEMA}.order_number_seq') AS n) q
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING id, number, created_at, updated_at
), i AS (
    INSERT INTO {SCHEMA}.order_items (order_id, id, variant_id, product_id, sku, name, quantity, unit_price,
                                      line_total)
    SELECT o.id, CAST(:item_id AS bigint), CAST(:variant_id AS bigint), CAST(:product_id AS bigint),
           CAST(:sku AS text), CAST(:name AS text), CAST(:quantity AS integer), CAST(:unit_price AS numeric),
           CAST(:total AS numeric)
    FROM o
), h AS (
    INSERT INTO {SCHEMA}.order_status_history (order_id, seq, from_status, to_status, reason, at)
    SELECT o.id, 1, NULL, 'AWAITING_PAYMENT', NULL, o.created_at FROM o
), s AS (
    INSERT INTO {SCHEMA}.order_sagas (order_id, user_id, step, payment_provider, payment_token, payment_deadline)
    SELECT o.id, CAST(:user_id AS bigint), 'AWAITING_PAYMENT', NULL, NULL,
           now() + CAST(:timeout AS double precision) * interval '1 second' FROM o
)
SELECT id, number, created_at, updated_at FROM o
""")


async def insert_flash_sale_order_if_new(session: AsyncSession, new: NewFlashSaleOrder, *,
                                         payment_timeout_seconds: float) -> OrderRecord | None:
    """The created order, or None when it exists already (a retry, or the reconciler racing the request)."""
    item = new.item
    row = (await session.execute(_INSERT_FLASH_SALE_ORDER, {
        "id": new.id, "user_id": new.user_id, "idempotency_key": new.idempotency_key,
        "fingerprint": new.request_fingerprint, "currency": new.currency, "total": item.line_total,
        "flash_sale_id": new.flash_sale_id, "item_id": item.id, "variant_id": item.variant_id,
        "product_id": item.product_id, "sku": item.sku, "name": item.name, "quantity": item.quantity,
        "unit_price": item.unit_price, "timeout": float(payment_timeout_seconds)})).first()
    if row is None:
        return None
    return OrderRecord(
        id=new.id, user_id=new.user_id, number=row.number, status=OrderStatus.AWAITING_PAYMENT, status_seq=1,
        cancellation_reason=None, cart_id=None, idempotency_key=new.idempotency_key,
        request_fingerprint=new.request_fingerprint, currency=new.currency, subtotal=item.line_total,
        discount=Decimal("0.00"), total=item.line_total, shipping_address=None,
        created_at=row.created_at, updated_at=row.updated_at)


# text(): a data-modifying CTE (the saga row and the order row in one statement); Core would say it less clearly.
# payOrder: the payment method is attached once (payment_provider IS NULL), only while payment is awaited.
_ATTACH_PAYMENT = text(f"""
WITH s AS (
    UPDATE {SCHEMA}.order_sagas
    SET payment_provider = CAST(:provider AS text), payment_token = CAST(:token AS text), updated_at = now()
    WHERE order_id = CAST(:id AS bigint) AND user_id = CAST(:user_id AS bigint) AND step = 'AWAITING_PAYMENT'
      AND payment_provider IS NULL
    RETURNING order_id
)
UPDATE {SCHEMA}.orders o SET shipping_address = CAST(:address AS jsonb), updated_at = now()
FROM s WHERE o.id = s.order_id AND o.user_id = CAST(:user_id AS bigint) AND o.status = 'AWAITING_PAYMENT'
RETURNING o.id
""")


async def attach_payment(session: AsyncSession, order_id: int, user_id: int, *, provider: str, token: str,
                         shipping_address: dict[str, Any]) -> bool:
    """False when the order is not awaiting payment or already has a payment method."""
    row = (await session.execute(_ATTACH_PAYMENT, {
        "id": order_id, "user_id": user_id, "provider": provider, "token": token,
        "address": orjson.dumps(shipping_address).decode()})).first()
    return row is not None
