"""Postgres SQL of the shipping domain: Core statements over the tables of models.py, mapped to frozen records.
No text(): every statement here reads clearly in Core.

A shipment, and a shipment's delivery, first lock the order's row here (`lock_order`), so two shipments of one
order never both take the last units of a line, and the "every shipment delivered" check sees every shipment.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of
from subgraphs.shipping.models import (
    MethodRecord,
    OrderFact,
    OrderFactStatus,
    OrderLineRecord,
    RateKind,
    ShipmentLineRecord,
    ShipmentRecord,
    ShipmentStatus,
    ZoneRecord,
    methods,
    order_lines,
    orders,
    products,
    shipment_lines,
    shipments,
    tiers_from_json,
    variants,
    zones,
)

_ZONE_COLUMNS = (zones.c.id, zones.c.name, zones.c.countries, zones.c.regions, zones.c.postal_prefixes,
                 zones.c.created_at)
_METHOD_COLUMNS = tuple(methods.c[name] for name in MethodRecord.__slots__)
_SHIPMENT_COLUMNS = (shipments.c.id, shipments.c.order_id, shipments.c.carrier, shipments.c.tracking_number,
                     shipments.c.tracking_url, shipments.c.status, shipments.c.created_by, shipments.c.shipped_at,
                     shipments.c.delivered_at)


def _zone(row: Any) -> ZoneRecord:
    m = row._mapping
    return ZoneRecord(id=m["id"], name=m["name"], countries=list(m["countries"]), regions=list(m["regions"]),
                      postal_prefixes=list(m["postal_prefixes"]), created_at=m["created_at"])


def _method(row: Any) -> MethodRecord:
    return _method_of(dict(row._mapping))


def _method_of(m: dict[str, Any]) -> MethodRecord:
    m["kind"] = RateKind(m["kind"])
    m["value_tiers"] = tiers_from_json(m["value_tiers"])
    return MethodRecord(**m)


def _shipment(row: Any, lines: list[ShipmentLineRecord]) -> ShipmentRecord:
    m = dict(row._mapping)
    m["status"] = ShipmentStatus(m["status"])
    return ShipmentRecord(**m, lines=lines)


# ---- zones and methods ------------------------------------------------------------------------------------

async def insert_zone(session: AsyncSession, values: dict[str, Any]) -> ZoneRecord:
    row = (await session.execute(insert(zones).values(**values, created_at=func.now())
                                 .returning(*_ZONE_COLUMNS))).one()
    return _zone(row)


async def get_zone(session: AsyncSession, zone_id: int) -> ZoneRecord | None:
    row = (await session.execute(select(*_ZONE_COLUMNS).where(zones.c.id == zone_id))).first()
    return _zone(row) if row else None


async def list_zones(session: AsyncSession) -> list[ZoneRecord]:
    return [_zone(r) for r in await session.execute(select(*_ZONE_COLUMNS).order_by(zones.c.id))]


async def zones_of_country_with_methods(session: AsyncSession,
                                       country: str) -> list[tuple[ZoneRecord, list[MethodRecord]]]:
    """The zones covering `country`, each with its live methods (oldest first): checkout's quote reads them in
    one statement instead of two."""
    live = methods.c.zone_id == zones.c.id
    rows = await session.execute(
        select(*_ZONE_COLUMNS, *(c.label(f"m_{c.name}") for c in _METHOD_COLUMNS))
        .select_from(zones.outerjoin(methods, live & methods.c.deleted.is_(False)))
        .where(zones.c.countries.contains([country])).order_by(zones.c.id, methods.c.id))
    found: dict[int, tuple[ZoneRecord, list[MethodRecord]]] = {}
    for row in rows:
        m = row._mapping
        zone_id = m["id"]
        if zone_id not in found:
            found[zone_id] = (_zone(row), [])
        if m["m_id"] is not None:
            found[zone_id][1].append(_method_of({c.name: m[f"m_{c.name}"] for c in _METHOD_COLUMNS}))
    return list(found.values())


async def delete_zone(session: AsyncSession, zone_id: int) -> bool:
    """Its methods go with it (ON DELETE CASCADE); orders keep the method id and price they were placed with."""
    return (await session.execute(delete(zones).where(zones.c.id == zone_id)
                                  .returning(zones.c.id))).first() is not None


def _method_values(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "kind" in out:
        out["kind"] = RateKind(out["kind"]).value
    if "value_tiers" in out:
        out["value_tiers"] = [{"min_order_value": str(t.min_order_value), "price": str(t.price)}
                              for t in out["value_tiers"]]
    return out


async def insert_method(session: AsyncSession, values: dict[str, Any]) -> MethodRecord:
    row = (await session.execute(insert(methods).values(**_method_values(values), deleted=False,
                                                        created_at=func.now(), updated_at=func.now())
                                 .returning(*_METHOD_COLUMNS))).one()
    return _method(row)


async def update_method(session: AsyncSession, method_id: int, values: dict[str, Any]) -> MethodRecord | None:
    row = (await session.execute(update(methods).where(methods.c.id == method_id, methods.c.deleted.is_(False))
                                 .values(**_method_values(values), updated_at=func.now())
                                 .returning(*_METHOD_COLUMNS))).first()
    return _method(row) if row else None


async def get_method(session: AsyncSession, method_id: int) -> MethodRecord | None:
    row = (await session.execute(select(*_METHOD_COLUMNS).where(methods.c.id == method_id))).first()
    return _method(row) if row else None


async def methods_of_zones(session: AsyncSession, zone_ids: Sequence[int]) -> list[MethodRecord]:
    """The live (not deleted) methods of these zones, oldest first."""
    if not zone_ids:
        return []
    rows = await session.execute(select(*_METHOD_COLUMNS).where(any_of(methods.c.zone_id, zone_ids),
                                                                methods.c.deleted.is_(False))
                                 .order_by(methods.c.id))
    return [_method(r) for r in rows]


async def delete_method(session: AsyncSession, method_id: int) -> bool:
    return (await session.execute(update(methods).where(methods.c.id == method_id, methods.c.deleted.is_(False))
                                  .values(deleted=True, updated_at=func.now())
                                  .returning(methods.c.id))).first() is not None


# ---- catalog facts ----------------------------------------------------------------------------------------

async def apply_product(session: AsyncSession, *, product_id: int, seller_id: int, updated_at: datetime,
                        weights: Sequence[tuple[int, int]]) -> None:
    """A product snapshot: its seller and its variants' weights, unless what is stored is newer."""
    p = insert(products).values(product_id=product_id, seller_id=seller_id, updated_at=updated_at)
    await session.execute(p.on_conflict_do_update(
        index_elements=[products.c.product_id], set_={"seller_id": p.excluded.seller_id,
                                                       "updated_at": p.excluded.updated_at},
        where=products.c.updated_at <= p.excluded.updated_at))
    if weights:
        v = insert(variants)
        await session.execute(v.on_conflict_do_update(
            index_elements=[variants.c.variant_id], set_={"weight_grams": v.excluded.weight_grams,
                                                           "product_id": v.excluded.product_id,
                                                           "updated_at": v.excluded.updated_at},
            where=variants.c.updated_at <= v.excluded.updated_at),
            [{"variant_id": variant_id, "product_id": product_id, "weight_grams": grams, "updated_at": updated_at}
             for variant_id, grams in weights])


async def weights(session: AsyncSession, variant_ids: Sequence[int]) -> dict[int, int]:
    if not variant_ids:
        return {}
    rows = await session.execute(select(variants.c.variant_id, variants.c.weight_grams)
                                 .where(any_of(variants.c.variant_id, variant_ids)))
    return {r.variant_id: r.weight_grams for r in rows}


async def sellers(session: AsyncSession, product_ids: Sequence[int]) -> dict[int, int]:
    if not product_ids:
        return {}
    rows = await session.execute(select(products.c.product_id, products.c.seller_id)
                                 .where(any_of(products.c.product_id, product_ids)))
    return {r.product_id: r.seller_id for r in rows}


# ---- orders' facts ----------------------------------------------------------------------------------------

async def record_order(session: AsyncSession, *, order_id: int, user_id: int, status: OrderFactStatus,
                       number: str | None = None) -> None:
    """PLACED never overwrites PAID or CANCELLED; PAID never overwrites CANCELLED; CANCELLED is final."""
    stmt = insert(orders).values(order_id=order_id, user_id=user_id, status=status.value, number=number,
                                 updated_at=func.now())
    allowed = {OrderFactStatus.PLACED: [OrderFactStatus.PLACED.value],
               OrderFactStatus.PAID: [OrderFactStatus.PLACED.value, OrderFactStatus.PAID.value],
               OrderFactStatus.CANCELLED: [s.value for s in OrderFactStatus]}[status]
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[orders.c.order_id],
        set_={"status": stmt.excluded.status, "number": func.coalesce(stmt.excluded.number, orders.c.number),
              "updated_at": func.now()},
        where=any_of(orders.c.status, allowed)))


async def record_order_lines(session: AsyncSession, lines: Sequence[dict[str, Any]]) -> None:
    if lines:
        await session.execute(insert(order_lines).on_conflict_do_nothing(),
                              [{**line, "shipped": 0} for line in lines])


async def lock_order(session: AsyncSession, order_id: int) -> OrderFact | None:
    row = (await session.execute(select(orders.c.order_id, orders.c.user_id, orders.c.status)
                                 .where(orders.c.order_id == order_id).with_for_update())).first()
    return OrderFact(order_id=row.order_id, user_id=row.user_id, status=OrderFactStatus(row.status)) if row else None


async def order_facts(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, OrderFact]:
    if not order_ids:
        return {}
    rows = await session.execute(select(orders.c.order_id, orders.c.user_id, orders.c.status)
                                 .where(any_of(orders.c.order_id, order_ids)))
    return {r.order_id: OrderFact(order_id=r.order_id, user_id=r.user_id, status=OrderFactStatus(r.status))
            for r in rows}


async def lines_of(session: AsyncSession, order_id: int) -> list[OrderLineRecord]:
    rows = await session.execute(select(order_lines).where(order_lines.c.order_id == order_id)
                                 .order_by(order_lines.c.item_id))
    return [OrderLineRecord(**r._mapping) for r in rows]


async def add_shipped(session: AsyncSession, order_id: int, item_id: int, quantity: int) -> bool:
    """Conditional: False (nothing changed) when it would ship more than the line has left."""
    return (await session.execute(
        update(order_lines).where(order_lines.c.order_id == order_id, order_lines.c.item_id == item_id,
                                  order_lines.c.shipped + quantity <= order_lines.c.quantity)
        .values(shipped=order_lines.c.shipped + quantity).returning(order_lines.c.item_id))).first() is not None


# ---- shipments --------------------------------------------------------------------------------------------

async def insert_shipment(session: AsyncSession, values: dict[str, Any],
                          lines: Sequence[ShipmentLineRecord]) -> ShipmentRecord:
    row = (await session.execute(insert(shipments).values(**values, shipped_at=func.now())
                                 .returning(*_SHIPMENT_COLUMNS))).one()
    await session.execute(insert(shipment_lines), [{"shipment_id": values["id"], "item_id": line.item_id,
                                                     "quantity": line.quantity} for line in lines])
    return _shipment(row, list(lines))


async def _lines_by_shipment(session: AsyncSession, shipment_ids: Sequence[int]) -> dict[int, list[ShipmentLineRecord]]:
    found: dict[int, list[ShipmentLineRecord]] = defaultdict(list)
    if shipment_ids:
        rows = await session.execute(select(shipment_lines).where(any_of(shipment_lines.c.shipment_id, shipment_ids))
                                     .order_by(shipment_lines.c.shipment_id, shipment_lines.c.item_id))
        for r in rows:
            found[r.shipment_id].append(ShipmentLineRecord(item_id=r.item_id, quantity=r.quantity))
    return found


async def get_shipment(session: AsyncSession, shipment_id: int) -> ShipmentRecord | None:
    row = (await session.execute(select(*_SHIPMENT_COLUMNS).where(shipments.c.id == shipment_id))).first()
    if row is None:
        return None
    return _shipment(row, (await _lines_by_shipment(session, [shipment_id]))[shipment_id])


async def shipments_by_order_ids(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, list[ShipmentRecord]]:
    found: dict[int, list[ShipmentRecord]] = defaultdict(list)
    if not order_ids:
        return found
    rows = list(await session.execute(select(*_SHIPMENT_COLUMNS).where(any_of(shipments.c.order_id, order_ids))
                                      .order_by(shipments.c.order_id, shipments.c.id)))
    lines = await _lines_by_shipment(session, [r.id for r in rows])
    for r in rows:
        found[r.order_id].append(_shipment(r, lines[r.id]))
    return found


async def set_delivered(session: AsyncSession, shipment_id: int) -> ShipmentRecord | None:
    """None when the shipment was delivered already."""
    row = (await session.execute(
        update(shipments).where(shipments.c.id == shipment_id, shipments.c.status == ShipmentStatus.SHIPPED.value)
        .values(status=ShipmentStatus.DELIVERED.value, delivered_at=func.now())
        .returning(*_SHIPMENT_COLUMNS))).first()
    if row is None:
        return None
    return _shipment(row, (await _lines_by_shipment(session, [shipment_id]))[shipment_id])


async def order_delivery_state(session: AsyncSession, order_id: int) -> tuple[bool, bool]:
    """(every line shipped in full, every shipment delivered)."""
    unshipped = (await session.execute(select(func.count()).select_from(order_lines).where(
        order_lines.c.order_id == order_id, order_lines.c.shipped < order_lines.c.quantity))).scalar_one()
    in_transit = (await session.execute(select(func.count()).select_from(shipments).where(
        shipments.c.order_id == order_id, shipments.c.status != ShipmentStatus.DELIVERED.value))).scalar_one()
    has_lines = (await session.execute(select(func.count()).select_from(order_lines).where(
        order_lines.c.order_id == order_id))).scalar_one()
    return has_lines > 0 and unshipped == 0, in_transit == 0
