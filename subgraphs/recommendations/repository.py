"""Postgres SQL of the recommendations domain: Core statements over the tables of models.py."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, cast, exists, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of
from subgraphs.recommendations.models import (
    SCHEMA,
    ExperimentRecord,
    ExperimentStatus,
    ProductCard,
    ProductRecord,
    VariantSpec,
    experiment_exposures,
    experiments,
    interactions,
    products,
    session_links,
    variants,
)


def _product(row: Any) -> ProductRecord:
    m = row._mapping
    card = (ProductCard(slug=m["slug"], name=m["name"], brand=m["brand"], min_price=m["price"],
                        currency=m["currency"])
            if m["name"] is not None and m["slug"] is not None and m["price"] is not None and m["currency"] else None)
    return ProductRecord(product_id=m["product_id"], category_id=m["category_id"], brand=m["brand"],
                         price=float(m["price"]) if m["price"] is not None else None, tags=tuple(m["tags"] or ()),
                         deleted=m["deleted"], in_stock=m["in_stock"], card=card)


# ---- products and variants --------------------------------------------------------------------------------

async def get_product(session: AsyncSession, product_id: int) -> ProductRecord | None:
    row = (await session.execute(select(products).where(products.c.product_id == product_id))).first()
    return _product(row) if row else None


async def all_products(session: AsyncSession) -> list[ProductRecord]:
    return [_product(r) for r in await session.execute(select(products))]


async def put_product_snapshot(session: AsyncSession, *, product_id: int, category_id: int, card: ProductCard,
                               tags: Sequence[str], updated_at: datetime, variant_ids: Sequence[int]) -> None:
    """The catalog's snapshot, unless a newer one (or the deletion) is here already; its variants are this
    product's from now on (a variant's stock state, learned first, is kept)."""
    values = {"category_id": category_id, "brand": card.brand, "price": card.min_price, "slug": card.slug,
              "name": card.name, "currency": card.currency, "tags": list(tags), "updated_at": updated_at}
    stmt = insert(products).values(product_id=product_id, deleted=False, in_stock=False, **values)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[products.c.product_id], set_=values,
        where=and_(products.c.deleted.is_(False),
                   or_(products.c.updated_at.is_(None), products.c.updated_at <= stmt.excluded.updated_at))))
    if variant_ids:
        await session.execute(insert(variants).on_conflict_do_update(
            index_elements=[variants.c.variant_id], set_={"product_id": product_id}),
            [{"variant_id": v, "product_id": product_id, "in_stock": False} for v in variant_ids])
    await refresh_in_stock(session, [product_id])


async def mark_product_deleted(session: AsyncSession, product_id: int) -> None:
    stmt = insert(products).values(product_id=product_id, tags=[], deleted=True, in_stock=False)
    await session.execute(stmt.on_conflict_do_update(index_elements=[products.c.product_id],
                                                     set_={"deleted": True}))


async def set_variant_stock(session: AsyncSession, variant_id: int, in_stock: bool) -> int | None:
    """The variant's latest stock state; returns its product (None while product.created is on its way)."""
    stmt = insert(variants).values(variant_id=variant_id, product_id=None, in_stock=in_stock)
    row = (await session.execute(stmt.on_conflict_do_update(
        index_elements=[variants.c.variant_id], set_={"in_stock": in_stock}).returning(variants.c.product_id))).first()
    product_id = row.product_id if row else None
    if product_id is not None:
        await refresh_in_stock(session, [product_id])
    return product_id


async def refresh_in_stock(session: AsyncSession, product_ids: Sequence[int]) -> None:
    """A product is in stock while any of its variants is."""
    any_in_stock = exists().where(variants.c.product_id == products.c.product_id, variants.c.in_stock.is_(True))
    await session.execute(update(products).where(any_of(products.c.product_id, product_ids))
                          .values(in_stock=any_in_stock))


async def products_of_variants(session: AsyncSession, variant_ids: Sequence[int]) -> list[int]:
    rows = await session.execute(select(variants.c.product_id).distinct()
                                 .where(any_of(variants.c.variant_id, variant_ids), variants.c.product_id.is_not(None)))
    return sorted(r.product_id for r in rows)


async def available_products(session: AsyncSession) -> list[ProductRecord]:
    """The products that may be recommended (ProductRecord.available), with their cards."""
    rows = await session.execute(select(products).where(products.c.deleted.is_(False), products.c.in_stock.is_(True),
                                                        products.c.name.is_not(None)))
    return [record for record in map(_product, rows) if record.available]


# ---- interactions -----------------------------------------------------------------------------------------

async def add_interactions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Stores each interaction once (by event_id); returns how many were new."""
    if not rows:
        return 0
    result = await session.execute(insert(interactions).on_conflict_do_nothing(index_elements=[interactions.c.event_id])
                                   .returning(interactions.c.id), list(rows))
    return len(result.all())


async def link_session(session: AsyncSession, session_id: str, user_id: int, at: datetime) -> None:
    """The first signed-in user of a guest session owns its history."""
    await session.execute(insert(session_links).values(session_id=session_id, user_id=user_id, linked_at=at)
                          .on_conflict_do_nothing(index_elements=[session_links.c.session_id]))


async def interactions_since(session: AsyncSession, since: datetime, *, limit: int) -> list[Any]:
    """(subject, product_id, kind, occurred_at) of the newest `limit` interactions since `since`, oldest first;
    a linked guest session's rows count as its user's."""
    # `||` with a NULL is NULL, so an unlinked row keeps its own subject.
    subject = func.coalesce(literal("user:").op("||")(cast(session_links.c.user_id, Text)), interactions.c.subject)
    newest = (select(subject.label("subject"), interactions.c.product_id, interactions.c.kind,
                     interactions.c.occurred_at)
              .select_from(interactions.outerjoin(session_links,
                                                  session_links.c.session_id == interactions.c.session_id))
              .where(interactions.c.occurred_at >= since)
              .order_by(interactions.c.occurred_at.desc()).limit(limit).subquery())
    return list(await session.execute(select(newest).order_by(newest.c.occurred_at)))


async def popularity_since(session: AsyncSession, since: datetime) -> dict[int, int]:
    """Interactions per product since `since`."""
    rows = await session.execute(select(interactions.c.product_id, func.count())
                                 .where(interactions.c.occurred_at >= since).group_by(interactions.c.product_id))
    return {r[0]: r[1] for r in rows}


# ---- experiments ------------------------------------------------------------------------------------------

_EXPERIMENT_COLUMNS = (experiments.c.id, experiments.c.key, experiments.c.status, experiments.c.variants,
                       experiments.c.created_by, experiments.c.created_at, experiments.c.stopped_at)


def _experiment(row: Any) -> ExperimentRecord:
    m = row._mapping
    return ExperimentRecord(id=m["id"], key=m["key"], status=ExperimentStatus(m["status"]),
                            variants=tuple(VariantSpec.from_json(v) for v in m["variants"]),
                            created_by=m["created_by"], created_at=m["created_at"], stopped_at=m["stopped_at"])


async def insert_experiment(session: AsyncSession, *, experiment_id: int, key: str, specs: Sequence[VariantSpec],
                            created_by: int, at: datetime) -> ExperimentRecord | None:
    """A RUNNING experiment; None when the key is taken (the unique constraint decides, so two concurrent
    creations cannot both win)."""
    stmt = (insert(experiments)
            .values(id=experiment_id, key=key, status=ExperimentStatus.RUNNING.value,
                    variants=[v.to_json() for v in specs], created_by=created_by, created_at=at)
            .on_conflict_do_nothing(index_elements=["key"]).returning(*_EXPERIMENT_COLUMNS))
    row = (await session.execute(stmt)).first()
    return _experiment(row) if row else None


async def get_experiment(session: AsyncSession, key: str) -> ExperimentRecord | None:
    row = (await session.execute(select(*_EXPERIMENT_COLUMNS).where(experiments.c.key == key))).first()
    return _experiment(row) if row else None


async def list_experiments(session: AsyncSession) -> list[ExperimentRecord]:
    """Newest first."""
    rows = await session.execute(select(*_EXPERIMENT_COLUMNS).order_by(experiments.c.created_at.desc(),
                                                                       experiments.c.id.desc()))
    return [_experiment(r) for r in rows]


async def latest_running_experiment(session: AsyncSession) -> ExperimentRecord | None:
    stmt = (select(*_EXPERIMENT_COLUMNS).where(experiments.c.status == ExperimentStatus.RUNNING.value)
            .order_by(experiments.c.created_at.desc(), experiments.c.id.desc()).limit(1))
    row = (await session.execute(stmt)).first()
    return _experiment(row) if row else None


async def stop_experiment(session: AsyncSession, key: str, at: datetime) -> ExperimentRecord | None:
    """The experiment after stopping it (unchanged when stopped already); None for an unknown key."""
    stmt = (update(experiments)
            .where(experiments.c.key == key, experiments.c.status == ExperimentStatus.RUNNING.value)
            .values(status=ExperimentStatus.STOPPED.value, stopped_at=at).returning(*_EXPERIMENT_COLUMNS))
    row = (await session.execute(stmt)).first()
    return _experiment(row) if row else await get_experiment(session, key)


async def insert_exposure(session: AsyncSession, *, experiment_id: int, subject: str, variant: str,
                          at: datetime) -> datetime | None:
    """When the subject was first exposed, if that is now; None when an earlier exposure is recorded."""
    stmt = (insert(experiment_exposures)
            .values(experiment_id=experiment_id, subject=subject, variant=variant, exposed_at=at)
            .on_conflict_do_nothing(index_elements=["experiment_id", "subject"])
            .returning(experiment_exposures.c.exposed_at))
    return (await session.execute(stmt)).scalar_one_or_none()


# text(): a correlated EXISTS per outcome whose subject is the exposure's or, for a guest session linked to an
# account, that account's: a lateral join Core would only obscure. Each EXISTS uses interactions' (subject,
# occurred_at) index; `variant` groups the experiment's rows read through the exposures' primary key.
_VARIANT_COUNTS_SQL = f"""
SELECT e.variant,
       count(*) AS exposures,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM {SCHEMA}.interactions i
           WHERE i.subject IN (e.subject, l.account) AND i.occurred_at >= e.exposed_at
             AND i.kind = 'PURCHASE')) AS conversions,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM {SCHEMA}.interactions i
           WHERE i.subject IN (e.subject, l.account) AND i.occurred_at >= e.exposed_at
             AND i.kind = 'CLICK' AND i.source = 'recommendations')) AS clickers,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM {SCHEMA}.interactions i
           WHERE i.subject IN (e.subject, l.account) AND i.occurred_at >= e.exposed_at
             AND i.kind = 'ADD_TO_CART')) AS cart_adders
FROM {SCHEMA}.experiment_exposures e
LEFT JOIN LATERAL (
    SELECT 'user:' || s.user_id AS account FROM {SCHEMA}.session_links s
    WHERE e.subject LIKE 'session:%' AND s.session_id = substr(e.subject, 9)
) l ON true
WHERE e.experiment_id = :experiment_id
GROUP BY e.variant
"""


async def variant_counts(session: AsyncSession, experiment_id: int) -> dict[str, tuple[int, int, int, int]]:
    """Per variant: (exposures, conversions, clickers, cart_adders), counted in distinct exposed subjects whose
    outcome came after their first exposure."""
    rows = await session.execute(text(_VARIANT_COUNTS_SQL), {"experiment_id": experiment_id})
    return {r.variant: (r.exposures, r.conversions, r.clickers, r.cart_adders) for r in rows}
