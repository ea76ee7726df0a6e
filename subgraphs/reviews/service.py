"""Reviews: the rules. Writing, editing and deleting a review, moderation, helpful votes and the seller's reply;
what a reader sees (pages and the rating summary); and what the domain learns from other domains' events (the
catalog's products and sellers, orders' purchases). No GraphQL and no HTTP here (schema.py, clients.py).

Who sees what: an APPROVED review is public; a PENDING or REJECTED one only its author (and ADMINs, who moderate).
A review the caller cannot see is NOT_FOUND, like an unknown id. The public rating counts APPROVED reviews only,
from a summary row per product that every change of an approved review (approval, rejection, edit, deletion)
updates in its own transaction.
"""
from __future__ import annotations

import base64
import dataclasses
import enum
import logging
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.errors import AppError, BadUserInput
from kernel.ids import is_valid_id, next_id
from kernel.outbox import add_event
from kernel.redis import count_in_minute
from kernel.settings import Settings
from subgraphs.catalog.events import ProductDeleted, ProductSnapshot
from subgraphs.orders.events import OrderPaid, OrderPlaced
from subgraphs.reviews import cache, clients, repository
from subgraphs.reviews.errors import (
    AlreadyReplied,
    AlreadyReviewed,
    InvalidReviewInput,
    NotTheSeller,
    NotYourReview,
    OwnReviewVote,
    ProductNotFound,
    ReviewNotFound,
    ReviewNotPublished,
    ReviewWritesRateLimited,
)
from subgraphs.reviews.events import ReviewApproved
from subgraphs.reviews.models import SCHEMA, ProductRecord, RatingRecord, ReviewRecord, ReviewStatus

log = logging.getLogger("nexuscart.reviews")

ADMIN = "ADMIN"
TITLE_MAX = 120
BODY_MAX = 5000
MAX_PAGE_SIZE = 50
# Control characters a multi-line text may keep: line breaks and tabs. Every other one (category Cc: C0, DEL, C1)
# is refused. U+0000 and lone surrogates never get this far (kernel/graphql/extensions.py refuses them).
_TEXT_CONTROLS = frozenset("\n\r\t")


class ReviewDecision(str, enum.Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


class ReviewSort(str, enum.Enum):
    NEWEST = "NEWEST"
    MOST_HELPFUL = "MOST_HELPFUL"
    RATING_HIGH = "RATING_HIGH"
    RATING_LOW = "RATING_LOW"


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---- input ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ReviewIn:
    product_id: int
    rating: int
    title: str
    body: str


@dataclasses.dataclass(frozen=True)
class ReviewChange:
    """An edit: the fields given (None: unchanged)."""
    rating: int | None = None
    title: str | None = None
    body: str | None = None


def clean_text(value: str, *, field: str, max_length: int, required: bool, multiline: bool) -> str:
    """Trimmed text of at most `max_length` characters (at least 1 when `required`), without control characters
    (a multi-line text keeps line breaks and tabs); BAD_USER_INPUT naming `field` otherwise. HTML is not
    touched: it is stored as given and never rendered."""
    # Checked before trimming: str.strip() would quietly drop some of them (U+0085, U+001C..U+001F) at the ends.
    for char in value:
        if unicodedata.category(char) == "Cc" and not (multiline and char in _TEXT_CONTROLS):
            raise InvalidReviewInput(f"'{field}' must not contain control characters", field=field)
    cleaned = value.strip()
    if required and not cleaned:
        raise InvalidReviewInput(f"'{field}' must not be empty", field=field)
    if len(cleaned) > max_length:
        raise InvalidReviewInput(f"'{field}' must be at most {max_length} characters", field=field)
    return cleaned


def check_rating(rating: int, *, field: str = "rating") -> int:
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidReviewInput(f"'{field}' must be a whole number of stars from 1 to 5", field=field)
    return rating


def _title(value: str) -> str:
    return clean_text(value, field="title", max_length=TITLE_MAX, required=True, multiline=False)


def _body(value: str) -> str:
    return clean_text(value, field="body", max_length=BODY_MAX, required=False, multiline=True)


# ---- the per-user write limit -----------------------------------------------------------------------------

async def count_write(redis: Redis, settings: Settings, user_id: int) -> None:
    """One review write by this user in the current minute; RATE_LIMITED beyond REVIEWS_WRITES_PER_MINUTE.
    Refused attempts count too."""
    if await count_in_minute(redis, f"reviews:writes:{user_id}") > settings.reviews_writes_per_minute:
        raise ReviewWritesRateLimited()


# ---- visibility -------------------------------------------------------------------------------------------

def can_see(review: ReviewRecord, caller: Principal | None) -> bool:
    if review.approved:
        return True
    return caller is not None and (caller.user_id == review.author_id or caller.has_role(ADMIN))


async def _visible_review(session: AsyncSession, review_id: int, caller: Principal, *, lock: bool = False,
                          key_share: bool = False) -> ReviewRecord:
    review = await repository.get_review(session, review_id, lock=lock, key_share=key_share)
    if review is None or not can_see(review, caller):
        raise ReviewNotFound(review_id)
    return review


# ---- the rating summary and review.approved ---------------------------------------------------------------

async def _recount(session: AsyncSession, before: ReviewRecord | None, after: ReviewRecord | None) -> None:
    """Move the product's summary by what this change did to its APPROVED reviews (before/after: None when the
    review does not exist on that side)."""
    counted_before = before if before is not None and before.approved else None
    counted_after = after if after is not None and after.approved else None
    if counted_before is not None and counted_after is not None and counted_before.rating == counted_after.rating:
        return  # still counted, with the same stars
    if counted_before is not None:
        await repository.change_rating(session, counted_before.product_id, counted_before.rating, -1)
    if counted_after is not None:
        await repository.change_rating(session, counted_after.product_id, counted_after.rating, 1)


async def _announce_if_approved(session: AsyncSession, before: ReviewRecord | None, after: ReviewRecord, *,
                                approved_by: int | None) -> None:
    """review.approved, when this change made the review APPROVED (not while it stays approved)."""
    if not after.approved or (before is not None and before.approved):
        return
    product = await repository.get_product(session, after.product_id)
    await add_event(session, SCHEMA, ReviewApproved(
        review_id=after.id, product_id=after.product_id, author_id=after.author_id,
        seller_id=product.seller_id if product else None, rating=after.rating, title=after.title,
        verified_purchase=after.verified_purchase, approved_at=after.moderated_at or after.updated_at,
        approved_by=approved_by), key=after.id)


def _status_after_writing(settings: Settings) -> ReviewStatus:
    return ReviewStatus.APPROVED if settings.reviews_auto_approve else ReviewStatus.PENDING


# ---- products: the projection, and the catalog when it has not heard yet -----------------------------------

async def known_product(session: AsyncSession, http: clients.PeerClient | None, settings: Settings,
                        product_id: int) -> ProductRecord | None:
    """The product as this domain knows it from catalog events, or, for one no event has told about yet (just
    listed), as the catalog answers now (stored as an event would store it). None for an unknown or deleted
    product; a catalog that does not answer leaves it unknown (logged)."""
    product = await repository.get_product(session, product_id)
    if product is not None or http is None:
        return None if product is None or product.deleted else product
    try:
        found = await clients.fetch_product(http, settings.catalog_service_url, product_id)
    except (clients.PeerUnavailable, AppError) as exc:
        log.warning("could not ask the catalog about a product", extra={"product_id": product_id, "error": repr(exc)})
        return None
    if found is None:
        return None
    seller = found.get("seller") or {}
    seller_id = int(seller["id"]) if isinstance(seller, dict) and seller.get("id") is not None else None
    await repository.put_product_learned(session, product_id=product_id, seller_id=seller_id)
    product = await repository.get_product(session, product_id)  # an event that got here first wins
    return None if product is None or product.deleted else product


async def apply_product_snapshot(session: AsyncSession, product: ProductSnapshot) -> None:
    await repository.put_product_snapshot(session, product_id=product.product_id, seller_id=product.seller_id,
                                          updated_at=product.updated_at)


async def apply_product_deleted(session: AsyncSession, product: ProductDeleted) -> None:
    """No new reviews of it; the ones written stay (the catalog no longer resolves the product anyway)."""
    await repository.mark_product_deleted(session, product.product_id)


# ---- purchases --------------------------------------------------------------------------------------------

async def _record_purchases(session: AsyncSession, *, user_id: int, product_ids: Sequence[int],
                            order_id: int) -> list[int]:
    """The user bought these products: remember it, and their reviews of them become verified purchases.
    Returns the reviews that changed. Idempotent (a redelivered event finds everything recorded)."""
    products = sorted(set(product_ids))
    if not products:
        return []
    for product_id in products:  # in one order, so two transactions never wait for each other's locks in a circle
        await repository.lock_author_product(session, user_id, product_id)
    await repository.add_purchases(session, user_id=user_id, product_ids=products, order_id=order_id)
    return await repository.mark_verified(session, user_id=user_id, product_ids=products)


async def apply_order_placed(session: AsyncSession, order: OrderPlaced) -> list[int]:
    """order.placed: which products the order holds. If its order.paid came first, the purchases count now."""
    products = sorted({item.product_id for item in order.items})
    known, paid_at = await repository.record_order_products(session, order_id=order.order_id,
                                                            user_id=order.user_id, product_ids=products)
    if paid_at is None or known is None:
        return []
    return await _record_purchases(session, user_id=order.user_id, product_ids=known, order_id=order.order_id)


async def apply_order_paid(session: AsyncSession, order: OrderPaid) -> list[int]:
    """order.paid: the order's products are purchases of its user (PAID is the first status of a bought order:
    shipped, delivered and refunded ones were paid first)."""
    known, _paid_at = await repository.record_order_paid(session, order_id=order.order_id, user_id=order.user_id,
                                                         at=utc_now())
    if known is None:  # its order.placed has not arrived yet: that one records the purchases
        return []
    return await _record_purchases(session, user_id=order.user_id, product_ids=known, order_id=order.order_id)


# ---- writing ----------------------------------------------------------------------------------------------

async def create_review(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                        review_in: ReviewIn, http: clients.PeerClient | None = None) -> ReviewRecord:
    """The caller's review of a product: PENDING until an ADMIN approves it (APPROVED at once with
    REVIEWS_AUTO_APPROVE). CONFLICT for a second review of the same product; NOT_FOUND for an unknown product."""
    await count_write(redis, settings, caller.user_id)
    rating = check_rating(review_in.rating)
    title = _title(review_in.title)
    body = _body(review_in.body)
    product = await known_product(session, http, settings, review_in.product_id)
    if product is None:
        raise ProductNotFound(review_in.product_id)
    if product.seller_id == caller.user_id:
        raise NotYourReview("You cannot review a product you sell")
    # Ordered against the purchase that verifies it: either it is recorded already, or it will find this review.
    await repository.lock_author_product(session, caller.user_id, product.product_id)
    now = utc_now()
    status = _status_after_writing(settings)
    review = await repository.insert_review(session, {
        "id": next_id(), "product_id": product.product_id, "author_id": caller.user_id, "rating": rating,
        "title": title, "body": body, "status": status.value,
        "verified_purchase": await repository.has_purchased(session, caller.user_id, product.product_id),
        "helpful_count": 0, "moderated_at": now if status is ReviewStatus.APPROVED else None,
        "created_at": now, "updated_at": now})
    if review is None:
        raise AlreadyReviewed(product.product_id)
    await _recount(session, None, review)
    await _announce_if_approved(session, None, review, approved_by=None)
    cache.GENERATION.bump_after_commit(session, redis)
    return review


async def update_review(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                        review_id: int, change: ReviewChange) -> ReviewRecord:
    """The author's edit. An edited review goes back to PENDING (stays or becomes APPROVED with
    REVIEWS_AUTO_APPROVE); the public rating follows."""
    await count_write(redis, settings, caller.user_id)
    values: dict[str, object] = {}
    if change.rating is not None:
        values["rating"] = check_rating(change.rating)
    if change.title is not None:
        values["title"] = _title(change.title)
    if change.body is not None:
        values["body"] = _body(change.body)
    if not values:
        raise BadUserInput("Give at least one of 'rating', 'title' and 'body' to change", field="input")
    before = await _visible_review(session, review_id, caller, lock=True)
    if before.author_id != caller.user_id:
        raise NotYourReview()
    now = utc_now()
    status = _status_after_writing(settings)
    values.update(status=status.value, updated_at=now)
    if status is ReviewStatus.APPROVED and not before.approved:
        values.update(moderated_by=None, moderated_at=now)
    after = await repository.update_review(session, review_id, values)
    await _recount(session, before, after)
    await _announce_if_approved(session, before, after, approved_by=None)
    cache.GENERATION.bump_after_commit(session, redis)
    return after


async def delete_review(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                        review_id: int) -> bool:
    """By its author or an ADMIN; its votes go with it and the public rating follows."""
    await count_write(redis, settings, caller.user_id)
    review = await _visible_review(session, review_id, caller, lock=True)
    if review.author_id != caller.user_id and not caller.has_role(ADMIN):
        raise NotYourReview("Only the author of this review or an ADMIN may delete it")
    await repository.delete_review(session, review_id)
    await _recount(session, review, None)
    cache.GENERATION.bump_after_commit(session, redis)
    return True


async def moderate_review(session: AsyncSession, redis: Redis | None, *, caller: Principal, review_id: int,
                          decision: ReviewDecision) -> ReviewRecord:
    """ADMIN: APPROVE or REJECT (also an approved review: a takedown, or a rejected one: a reversal). The same
    decision again changes nothing."""
    caller.require_role(ADMIN)
    before = await _visible_review(session, review_id, caller, lock=True)
    target = ReviewStatus.APPROVED if decision is ReviewDecision.APPROVE else ReviewStatus.REJECTED
    if before.status == target.value:
        return before
    after = await repository.update_review(session, review_id, {
        "status": target.value, "moderated_by": caller.user_id, "moderated_at": utc_now()})
    await _recount(session, before, after)
    await _announce_if_approved(session, before, after, approved_by=caller.user_id)
    cache.GENERATION.bump_after_commit(session, redis)
    return after


async def vote_helpful(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                       review_id: int, helpful: bool) -> ReviewRecord:
    """`helpful` true: the caller's vote is counted (once however often it is sent); false: taken back. Not on
    one's own review (FORBIDDEN); only published reviews take votes."""
    await count_write(redis, settings, caller.user_id)
    # FOR KEY SHARE: the review cannot be deleted under the vote, and other voters are not blocked.
    review = await _visible_review(session, review_id, caller, key_share=True)
    if review.author_id == caller.user_id:
        raise OwnReviewVote()
    if not review.approved:
        raise ReviewNotPublished(review_id)
    if helpful:
        await repository.add_vote(session, review_id, caller.user_id)
    else:
        await repository.remove_vote(session, review_id, caller.user_id)
    updated = await repository.get_review(session, review_id)
    assert updated is not None  # held by the lock above
    cache.GENERATION.bump_after_commit(session, redis)
    return updated


async def reply_to_review(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                          review_id: int, body: str) -> ReviewRecord:
    """The product's seller answers a review, once (CONFLICT for a second reply)."""
    await count_write(redis, settings, caller.user_id)
    text = clean_text(body, field="body", max_length=BODY_MAX, required=True, multiline=True)
    review = await _visible_review(session, review_id, caller, lock=True)
    product = await repository.get_product(session, review.product_id)
    if product is None or product.seller_id is None or product.seller_id != caller.user_id:
        raise NotTheSeller()
    replied = await repository.set_reply(session, review_id, body=text, author_id=caller.user_id, at=utc_now())
    if replied is None:
        raise AlreadyReplied(review_id)
    cache.GENERATION.bump_after_commit(session, redis)
    return replied


# ---- reading ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PageRequest:
    """What one Product.reviews field asks for (minus the product): requests with the same one are loaded for
    all their products in one query."""
    sort: ReviewSort
    rating: int | None
    first: int
    after: tuple[int | None, int] | None
    viewer_id: int | None


@dataclasses.dataclass(frozen=True)
class ReviewPage:
    reviews: list[ReviewRecord]
    cursors: list[str]
    has_next_page: bool


def encode_cursor(sort: ReviewSort, review: ReviewRecord) -> str:
    column, _ = repository.SORT_KEYS[sort.value]
    key = getattr(review, column) if column else None
    return base64.urlsafe_b64encode(orjson.dumps([sort.value, key, str(review.id)])).decode().rstrip("=")


def decode_cursor(sort: ReviewSort, cursor: str) -> tuple[int | None, int]:
    """The keyset position (sort key, id) of an opaque cursor of this sort; anything else is BAD_USER_INPUT."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, key, review_id = orjson.loads(raw)
        digits = isinstance(review_id, str) and review_id.isascii() and review_id.isdigit()
        parsed_id = int(review_id) if digits else None
        column, _ = repository.SORT_KEYS[sort.value]
        key_ok = key is None if column is None else (type(key) is int and 0 <= key <= 2**31 - 1)
        if cursor_sort != sort.value or not is_valid_id(parsed_id) or not key_ok:
            raise ValueError("not a cursor of this sort")
        return key, parsed_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidReviewInput("'after' is not a cursor of this list", field="after") from None


def page_request(*, sort: ReviewSort, rating: int | None, first: int, after: str | None,
                 viewer: Principal | None) -> PageRequest:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidReviewInput(f"'first' must be between 1 and {MAX_PAGE_SIZE}", field="first")
    if rating is not None:
        check_rating(rating)
    position = decode_cursor(sort, after) if after is not None else None
    return PageRequest(sort=sort, rating=rating, first=first, after=position,
                       viewer_id=viewer.user_id if viewer else None)


async def review_pages(session: AsyncSession, request: PageRequest,
                       product_ids: Sequence[int]) -> dict[int, ReviewPage]:
    """One page of each product's visible reviews (APPROVED ones, and the viewer's own), in one query."""
    rows = await repository.review_pages(session, product_ids, sort=request.sort.value, rating=request.rating,
                                         limit=request.first + 1, after=request.after, viewer_id=request.viewer_id)
    pages = {}
    for product_id in product_ids:
        found = rows.get(product_id, [])
        shown = found[:request.first]
        pages[product_id] = ReviewPage(reviews=shown, cursors=[encode_cursor(request.sort, r) for r in shown],
                                       has_next_page=len(found) > request.first)
    return pages


async def count_visible(session: AsyncSession, product_ids: Sequence[int], *, rating: int | None,
                        viewer_id: int | None) -> dict[int, int]:
    return await repository.count_visible(session, product_ids, rating=rating, viewer_id=viewer_id)


async def ratings(session: AsyncSession, product_ids: Sequence[int]) -> list[RatingRecord]:
    """Each product's summary (an empty one for a product without approved reviews), in the order asked."""
    by_id = {r.product_id: r for r in await repository.ratings_by_product_ids(session, product_ids)}
    return [by_id.get(p) or RatingRecord.empty(p) for p in product_ids]


async def reviews_by_ids(session: AsyncSession, review_ids: Sequence[int]) -> list[ReviewRecord | None]:
    by_id = {r.id: r for r in await repository.reviews_by_ids(session, review_ids)}
    return [by_id.get(i) for i in review_ids]


async def awaiting_moderation(session: AsyncSession, *, caller: Principal, first: int,
                              after: int | None) -> tuple[list[ReviewRecord], bool]:
    """ADMIN: PENDING reviews, oldest first; (page, has_next_page)."""
    caller.require_role(ADMIN)
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidReviewInput(f"'first' must be between 1 and {MAX_PAGE_SIZE}", field="first")
    rows = await repository.pending_reviews(session, limit=first + 1, after_id=after)
    return rows[:first], len(rows) > first


async def count_awaiting_moderation(session: AsyncSession) -> int:
    return await repository.count_pending(session)
