"""Postgres SQL of the reviews domain: Core statements over the tables of models.py, mapped to frozen records.

Every review change that moves the public rating locks the review's row first (`get_review(lock=True)`), so the
summary row (`product_ratings`) is changed by exactly the difference each change makes. A transaction-scoped
advisory lock on (author, product) orders a review's creation against the arrival of the purchase that verifies
it (`lock_author_product`). No text(): every statement here reads clearly in Core.
"""
from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of
from subgraphs.reviews.models import (
    ProductRecord,
    RatingRecord,
    ReviewRecord,
    ReviewStatus,
    order_facts,
    product_ratings,
    products,
    purchases,
    review_votes,
    reviews,
)

_REVIEW_COLUMNS = tuple(reviews.c[name] for name in ReviewRecord.__slots__)
_STARS = ("stars_1", "stars_2", "stars_3", "stars_4", "stars_5")
_APPROVED = ReviewStatus.APPROVED.value
# The advisory-lock space of (author, product) pairs: the two-int form, with this domain's own first key.
_AUTHOR_PRODUCT_LOCK = 0x52455657  # "REVW"


def _review(row: Any) -> ReviewRecord:
    m = row._mapping
    return ReviewRecord(**{k: m[k] for k in ReviewRecord.__slots__})


# ---- reviews ----------------------------------------------------------------------------------------------

async def insert_review(session: AsyncSession, values: dict[str, Any]) -> ReviewRecord | None:
    """The stored review, or None when this author has reviewed this product already (the unique constraint
    decides, so two concurrent creations cannot both succeed)."""
    row = (await session.execute(
        insert(reviews).values(**values)
        .on_conflict_do_nothing(index_elements=[reviews.c.author_id, reviews.c.product_id])
        .returning(*_REVIEW_COLUMNS))).first()
    return _review(row) if row else None


async def get_review(session: AsyncSession, review_id: int, *, lock: bool = False,
                     key_share: bool = False) -> ReviewRecord | None:
    """`lock`: FOR UPDATE (a change that moves the rating or the reply); `key_share`: FOR KEY SHARE (a vote: the
    review cannot be deleted meanwhile, while other voters' counter updates are not blocked)."""
    stmt = select(*_REVIEW_COLUMNS).where(reviews.c.id == review_id)
    if lock:
        stmt = stmt.with_for_update()
    elif key_share:
        stmt = stmt.with_for_update(read=True, key_share=True)
    row = (await session.execute(stmt)).first()
    return _review(row) if row else None


async def reviews_by_ids(session: AsyncSession, review_ids: Sequence[int]) -> list[ReviewRecord]:
    rows = await session.execute(select(*_REVIEW_COLUMNS).where(any_of(reviews.c.id, review_ids)))
    return [_review(r) for r in rows]


async def update_review(session: AsyncSession, review_id: int, values: dict[str, Any]) -> ReviewRecord:
    row = (await session.execute(update(reviews).where(reviews.c.id == review_id).values(**values)
                                 .returning(*_REVIEW_COLUMNS))).one()
    return _review(row)


async def delete_review(session: AsyncSession, review_id: int) -> bool:
    """Its votes go with it (ON DELETE CASCADE)."""
    return (await session.execute(delete(reviews).where(reviews.c.id == review_id)
                                  .returning(reviews.c.id))).first() is not None


async def set_reply(session: AsyncSession, review_id: int, *, body: str, author_id: int,
                    at: datetime) -> ReviewRecord | None:
    """None when the review has a reply already (one per review; the condition is in the statement)."""
    row = (await session.execute(
        update(reviews).where(reviews.c.id == review_id, reviews.c.reply_body.is_(None))
        .values(reply_body=body, reply_author_id=author_id, replied_at=at)
        .returning(*_REVIEW_COLUMNS))).first()
    return _review(row) if row else None


# ---- helpful votes ----------------------------------------------------------------------------------------

async def add_vote(session: AsyncSession, review_id: int, user_id: int) -> bool:
    """True when this vote is new (the counter went up with it); False for a repeated one."""
    inserted = (await session.execute(
        insert(review_votes).values(review_id=review_id, user_id=user_id, created_at=func.now())
        .on_conflict_do_nothing().returning(review_votes.c.user_id))).first()
    if inserted is None:
        return False
    await session.execute(update(reviews).where(reviews.c.id == review_id)
                          .values(helpful_count=reviews.c.helpful_count + 1))
    return True


async def remove_vote(session: AsyncSession, review_id: int, user_id: int) -> bool:
    """True when a vote was taken back (the counter went down with it); False when there was none."""
    removed = (await session.execute(
        delete(review_votes).where(review_votes.c.review_id == review_id, review_votes.c.user_id == user_id)
        .returning(review_votes.c.user_id))).first()
    if removed is None:
        return False
    await session.execute(update(reviews).where(reviews.c.id == review_id)
                          .values(helpful_count=reviews.c.helpful_count - 1))
    return True


# ---- the rating summary -----------------------------------------------------------------------------------

async def change_rating(session: AsyncSession, product_id: int, rating: int, delta: int) -> None:
    """Count one APPROVED review of `rating` stars in (delta 1) or out (delta -1) of the product's summary row."""
    star = _STARS[rating - 1]
    t = product_ratings
    if delta < 0:
        # Plain UPDATE: the row exists (the review was counted in), and the proposed row of an upsert must pass
        # the CHECKs on its own, which negative counts do not.
        await session.execute(update(t).where(t.c.product_id == product_id).values(
            count=t.c.count - 1, rating_sum=t.c.rating_sum - rating, **{star: t.c[star] - 1}))
        return
    values = {"product_id": product_id, "count": 1, "rating_sum": rating, **{c: int(c == star) for c in _STARS}}
    stmt = insert(t).values(**values)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[t.c.product_id],
        set_={"count": t.c.count + 1, "rating_sum": t.c.rating_sum + rating, star: t.c[star] + 1}))


async def ratings_by_product_ids(session: AsyncSession, product_ids: Sequence[int]) -> list[RatingRecord]:
    t = product_ratings
    rows = await session.execute(select(t.c.product_id, t.c.count, t.c.rating_sum, *(t.c[s] for s in _STARS))
                                 .where(any_of(t.c.product_id, product_ids)))
    # Row.count is the tuple method: read the columns by name.
    return [RatingRecord(product_id=m["product_id"], count=m["count"], rating_sum=m["rating_sum"],
                         stars=(m["stars_1"], m["stars_2"], m["stars_3"], m["stars_4"], m["stars_5"]))
            for m in (r._mapping for r in rows)]


# ---- pages ------------------------------------------------------------------------------------------------

# Sort name -> (column, descending). Every sort ends with id DESC (Snowflake ids: newest first) as the tie-breaker.
SORT_KEYS: dict[str, tuple[str | None, bool]] = {
    "NEWEST": (None, True), "MOST_HELPFUL": ("helpful_count", True),
    "RATING_HIGH": ("rating", True), "RATING_LOW": ("rating", False)}


def _visible(viewer_id: int | None) -> Any:
    """APPROVED reviews, and the viewer's own whatever their status."""
    approved = reviews.c.status == _APPROVED
    return approved if viewer_id is None else or_(approved, reviews.c.author_id == viewer_id)


async def review_pages(session: AsyncSession, product_ids: Sequence[int], *, sort: str, rating: int | None,
                       limit: int, after: tuple[int | None, int] | None,
                       viewer_id: int | None) -> dict[int, list[ReviewRecord]]:
    """Up to `limit` visible reviews of each product, in `sort` order, after the keyset position `after`
    ((sort key, id); the key is None for NEWEST): ONE query for all products, numbering each product's rows."""
    column_name, descending = SORT_KEYS[sort]
    conditions = [any_of(reviews.c.product_id, product_ids), _visible(viewer_id)]
    if rating is not None:
        conditions.append(reviews.c.rating == rating)
    if after is not None:
        key, after_id = after
        if column_name is None:
            conditions.append(reviews.c.id < after_id)
        else:
            column = reviews.c[column_name]
            beyond = column < key if descending else column > key
            conditions.append(or_(beyond, and_(column == key, reviews.c.id < after_id)))
    order = [reviews.c.id.desc()]
    if column_name is not None:
        column = reviews.c[column_name]
        order.insert(0, column.desc() if descending else column.asc())
    numbered = (select(*_REVIEW_COLUMNS,
                       func.row_number().over(partition_by=reviews.c.product_id, order_by=order).label("position"))
                .where(*conditions).subquery())
    stmt: Select[Any] = (select(*(numbered.c[name] for name in ReviewRecord.__slots__))
                         .where(numbered.c.position <= limit)
                         .order_by(numbered.c.product_id, numbered.c.position))
    pages: dict[int, list[ReviewRecord]] = defaultdict(list)
    for row in await session.execute(stmt):
        pages[row.product_id].append(_review(row))
    return pages


async def count_visible(session: AsyncSession, product_ids: Sequence[int], *, rating: int | None,
                        viewer_id: int | None) -> dict[int, int]:
    conditions = [any_of(reviews.c.product_id, product_ids), _visible(viewer_id)]
    if rating is not None:
        conditions.append(reviews.c.rating == rating)
    rows = await session.execute(select(reviews.c.product_id, func.count()).where(*conditions)
                                 .group_by(reviews.c.product_id))
    return {product_id: count for product_id, count in rows}


async def pending_reviews(session: AsyncSession, *, limit: int, after_id: int | None) -> list[ReviewRecord]:
    """The moderation queue, oldest first."""
    stmt = select(*_REVIEW_COLUMNS).where(reviews.c.status == ReviewStatus.PENDING.value)
    if after_id is not None:
        stmt = stmt.where(reviews.c.id > after_id)
    rows = await session.execute(stmt.order_by(reviews.c.id).limit(limit))
    return [_review(r) for r in rows]


async def count_pending(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(reviews)
                                  .where(reviews.c.status == ReviewStatus.PENDING.value))).scalar_one()


# ---- the catalog's products, as events told ---------------------------------------------------------------

async def get_product(session: AsyncSession, product_id: int) -> ProductRecord | None:
    row = (await session.execute(select(products.c.product_id, products.c.seller_id, products.c.deleted)
                                 .where(products.c.product_id == product_id))).first()
    return ProductRecord(product_id=row.product_id, seller_id=row.seller_id, deleted=row.deleted) if row else None


async def put_product_snapshot(session: AsyncSession, *, product_id: int, seller_id: int,
                               updated_at: datetime) -> None:
    """A product.created / product.updated snapshot; an older one than what is stored, or one for a deleted
    product, changes nothing. A row learned from the catalog directly (updated_at NULL) is replaced."""
    stmt = insert(products).values(product_id=product_id, seller_id=seller_id, deleted=False, updated_at=updated_at)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[products.c.product_id],
        set_={"seller_id": stmt.excluded.seller_id, "updated_at": stmt.excluded.updated_at},
        where=and_(products.c.deleted.is_(False),
                   or_(products.c.updated_at.is_(None), products.c.updated_at < stmt.excluded.updated_at))))


async def put_product_learned(session: AsyncSession, *, product_id: int, seller_id: int | None) -> None:
    """What the catalog answered for a product no event has told about yet; an event that got here first wins."""
    await session.execute(insert(products).values(product_id=product_id, seller_id=seller_id, deleted=False,
                                                  updated_at=None).on_conflict_do_nothing())


async def mark_product_deleted(session: AsyncSession, product_id: int) -> None:
    stmt = insert(products).values(product_id=product_id, seller_id=None, deleted=True, updated_at=None)
    await session.execute(stmt.on_conflict_do_update(index_elements=[products.c.product_id],
                                                     set_={"deleted": True}))


# ---- purchases, as orders' events told --------------------------------------------------------------------

async def record_order_products(session: AsyncSession, *, order_id: int, user_id: int,
                                product_ids: list[int]) -> tuple[list[int] | None, datetime | None]:
    """order.placed: the order's products. Returns the order's facts after the upsert (products, paid_at): the
    row is locked by it, so a concurrent order.paid sees these products, or this sees its paid_at."""
    stmt = insert(order_facts).values(order_id=order_id, user_id=user_id, product_ids=product_ids)
    row = (await session.execute(stmt.on_conflict_do_update(
        index_elements=[order_facts.c.order_id], set_={"product_ids": stmt.excluded.product_ids})
        .returning(order_facts.c.product_ids, order_facts.c.paid_at))).one()
    return row.product_ids, row.paid_at


async def record_order_paid(session: AsyncSession, *, order_id: int, user_id: int,
                            at: datetime) -> tuple[list[int] | None, datetime | None]:
    """order.paid: the order is paid (the first time counts). Returns the facts after the upsert, as above."""
    stmt = insert(order_facts).values(order_id=order_id, user_id=user_id, paid_at=at)
    row = (await session.execute(stmt.on_conflict_do_update(
        index_elements=[order_facts.c.order_id],
        set_={"paid_at": func.coalesce(order_facts.c.paid_at, stmt.excluded.paid_at)})
        .returning(order_facts.c.product_ids, order_facts.c.paid_at))).one()
    return row.product_ids, row.paid_at


def _pair_key(user_id: int, product_id: int) -> int:
    """A signed 32-bit key for the pair (collisions only make two pairs wait for each other)."""
    return zlib.crc32(f"{user_id}:{product_id}".encode()) - (1 << 31)


async def lock_author_product(session: AsyncSession, user_id: int, product_id: int) -> None:
    """Until the transaction ends: a review's creation (does a purchase exist?) and the recording of a purchase
    (is there a review to verify?) for the same pair run one after the other, so neither misses the other."""
    await session.execute(select(func.pg_advisory_xact_lock(_AUTHOR_PRODUCT_LOCK, _pair_key(user_id, product_id))))


async def add_purchases(session: AsyncSession, *, user_id: int, product_ids: Sequence[int], order_id: int) -> None:
    await session.execute(insert(purchases).values(purchased_at=func.now()).on_conflict_do_nothing(),
                          [{"user_id": user_id, "product_id": p, "order_id": order_id} for p in product_ids])


async def has_purchased(session: AsyncSession, user_id: int, product_id: int) -> bool:
    return (await session.execute(select(purchases.c.order_id).where(
        purchases.c.user_id == user_id, purchases.c.product_id == product_id))).first() is not None


async def mark_verified(session: AsyncSession, *, user_id: int, product_ids: Sequence[int]) -> list[int]:
    """The user's reviews of these products become verified purchases; returns the ids that changed."""
    rows = await session.execute(
        update(reviews).where(reviews.c.author_id == user_id, any_of(reviews.c.product_id, product_ids),
                              reviews.c.verified_purchase.is_(False))
        .values(verified_purchase=True).returning(reviews.c.id))
    return [r.id for r in rows]
