"""Recommendations: the rules. Tracking what shoppers do, answering what to show them, learning from other
domains' events (the catalog's products, inventory's stock, orders' purchases) and retraining the model. No
GraphQL here (schema.py).

Who a shopper is: signed in, `user:<id>`; a guest, `session:<sessionId>` (the client's own opaque id). A signed-in
shopper may also give the session they browsed with as a guest: that session is linked to them (there is no login
or cart-merge event to learn it from), its recent products count as theirs at once and, in training, its history.

What is never recommended: a deleted or out-of-stock product, and what the shopper bought within
RECOMMENDATIONS_BOUGHT_EXCLUSION_DAYS. What they just looked at goes to the end of the list, kept only when
nothing else fills it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.auth import Principal
from kernel.consumer import current_envelope
from kernel.ids import next_id
from kernel.outbox import add_event
from kernel.redis import count_in_minute
from kernel.settings import Settings
from kernel.uow import after_commit, unit_of_work
from subgraphs.catalog.events import ProductDeleted, ProductSnapshot
from subgraphs.inventory.events import StockChanged
from subgraphs.orders.events import OrderPaid
from subgraphs.recommendations import clients, experiments, repository, signals
from subgraphs.recommendations.errors import (
    InteractionsRateLimited,
    InvalidRecommendationInput,
    ProductNotFound,
    ShopperUnknown,
)
from subgraphs.recommendations.events import InteractionRecorded
from subgraphs.recommendations.models import SCHEMA, InteractionKind, ProductCard, ProductRecord
from subgraphs.recommendations.serving import Recommender

if TYPE_CHECKING:
    from ml.serving import ServingModel

log = logging.getLogger("nexuscart.recommendations")

MAX_FIRST = 50
SESSION_ID_MAX = 64
SOURCE_MAX = 64
# Candidates asked beyond `first`: room for what Redis then rules out (out of stock, just bought).
CANDIDATE_MARGIN = 20
TRACKED_KINDS = frozenset({InteractionKind.VIEW, InteractionKind.CLICK, InteractionKind.ADD_TO_CART,
                           InteractionKind.WISHLIST})
_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]+")
# Purchases learned from one order.paid are stored under ids derived from it, so a re-sent event adds nothing.
_PURCHASE_NAMESPACE = uuid.UUID("6f1c2a52-5e0b-4a8e-9a43-9c2f1d0b7e11")
# Training needs a little history; below this the popularity of the projection answers alone.
MIN_TRAINING_INTERACTIONS = 50
MAX_TRAINING_INTERACTIONS = 500_000
RETRAIN_LOCK_KEY = "recs:retrain-lock"


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---- input ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class InteractionIn:
    product_id: int
    kind: InteractionKind
    session_id: str | None
    source: str | None


def check_first(first: int, *, field: str = "first") -> int:
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_FIRST:
        raise InvalidRecommendationInput(f"'{field}' must be between 1 and {MAX_FIRST}", field=field)
    return first


def check_session_id(session_id: str | None) -> str | None:
    if session_id is None:
        return None
    if not 1 <= len(session_id) <= SESSION_ID_MAX or not _SESSION_ID.fullmatch(session_id):
        raise InvalidRecommendationInput(
            f"'sessionId' must be 1..{SESSION_ID_MAX} characters: letters, digits, '_', '-', '.', ':'",
            field="sessionId")
    return session_id


def _check_source(source: str | None) -> str | None:
    if source is None:
        return None
    cleaned = source.strip()
    if any(unicodedata.category(c) == "Cc" for c in source) or not 1 <= len(cleaned) <= SOURCE_MAX:
        raise InvalidRecommendationInput(f"'source' must be 1..{SOURCE_MAX} characters without control characters",
                                         field="source")
    return cleaned


def subjects_of(caller: Principal | None, session_id: str | None) -> list[str]:
    """Whose recent products count: the user's and the session's (either may be missing)."""
    subjects = [signals.user_subject(caller.user_id)] if caller is not None else []
    if session_id is not None:
        subjects.append(signals.session_subject(session_id))
    return subjects


# ---- tracking ---------------------------------------------------------------------------------------------

async def _product_on_sale(session: AsyncSession, http: clients.PeerClient | None, settings: Settings,
                           product_id: int) -> bool:
    """Whether the product is on sale, as catalog's events told this domain, or, for one no event has told about
    yet (listed a moment ago), as the catalog answers now. A product known as deleted is not asked about (its
    deletion came by event); a catalog that does not answer counts as no (logged)."""
    product = await repository.get_product(session, product_id)
    if product is not None or http is None:
        return product is not None and not product.deleted
    try:
        return await clients.catalog_sells(http, settings.catalog_service_url, product_id)
    except clients.PeerUnavailable as exc:
        log.warning("could not ask the catalog about a product", extra={"product_id": product_id, "error": repr(exc)})
        return False


async def track_interaction(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal | None,
                            interaction: InteractionIn, http: clients.PeerClient | None = None) -> bool:
    """Record what the shopper did: their recent products change at once (Redis, after commit) and
    `interaction.recorded` goes out (the worker stores it for training). A guest needs a sessionId
    (UNAUTHENTICATED without); an unknown or deleted product is NOT_FOUND (given `http`, a product not heard of
    yet is checked with the catalog); more than RECOMMENDATIONS_INTERACTIONS_PER_MINUTE per shopper is
    RATE_LIMITED (refused attempts count too)."""
    if interaction.kind not in TRACKED_KINDS:
        raise InvalidRecommendationInput("'kind' must be VIEW, CLICK, ADD_TO_CART or WISHLIST", field="kind")
    session_id = check_session_id(interaction.session_id)
    source = _check_source(interaction.source)
    if caller is None and session_id is None:
        raise ShopperUnknown()
    subject = (signals.user_subject(caller.user_id) if caller is not None
               else signals.session_subject(session_id or ""))
    if await count_in_minute(redis, f"recs:track:{subject}") > settings.recommendations_interactions_per_minute:
        raise InteractionsRateLimited()
    if not await _product_on_sale(session, http, settings, interaction.product_id):
        raise ProductNotFound(interaction.product_id)
    product_id = interaction.product_id
    now = utc_now()
    if caller is not None and session_id is not None:
        await repository.link_session(session, session_id, caller.user_id, now)
    await add_event(session, SCHEMA, InteractionRecorded(
        interaction_id=str(uuid.uuid4()), subject=subject, user_id=caller.user_id if caller else None,
        session_id=session_id, product_id=product_id, kind=interaction.kind.value, source=source,
        occurred_at=now), key=subject)

    async def remember() -> None:
        await signals.push_recent(redis, subject, product_id)

    after_commit(session, remember)
    return True


# ---- answers ----------------------------------------------------------------------------------------------

# A product to show and its card: what a list shows of it, answered here (schema.py's `@provides`).
ShownProduct = tuple[int, ProductCard]


async def _shown(redis: Redis, candidates: Sequence[int], *, recent: Sequence[int],
                 first: int) -> list[ShownProduct]:
    """The first `first` candidates that may be shown (Redis: in stock, not deleted), the shopper's recent
    products last, each with its card."""
    cards = await signals.stored_cards(redis, candidates)
    just_seen = set(recent)
    fresh = [p for p in candidates if p in cards and p not in just_seen]
    seen = [p for p in candidates if p in cards and p in just_seen]
    return [(p, signals.parse_card(cards[p])) for p in (fresh + seen)[:first]]


async def recommended_for_you(redis: Redis, recommender: Recommender, settings: Settings, *,
                              caller: Principal | None, session_id: str | None, first: int,
                              model: ServingModel | None = None, categories: Sequence[int] = ()) -> list[ShownProduct]:
    """For the signed-in user and/or the guest session: personal when they have recent products, else the most
    popular products (also for an anonymous caller without a session: the shop's front page). Two Redis round
    trips and in-memory scoring, no SQL."""
    check_first(first)
    session_id = check_session_id(session_id)
    subjects = subjects_of(caller, session_id)
    recent, bought = await signals.read_shopper(
        redis, subjects, caller.user_id if caller else None,
        timedelta(days=settings.recommendations_bought_exclusion_days).total_seconds())
    wanted = first + len(recent) + CANDIDATE_MARGIN
    candidates = recommender.for_shopper(recent, exclude=bought, first=wanted, categories=categories, model=model)
    return await _shown(redis, candidates, recent=recent, first=first)


async def recommended_for_shopper(session: AsyncSession, redis: Redis, recommender: Recommender,
                                  settings: Settings, *, caller: Principal | None, session_id: str | None,
                                  first: int) -> list[ShownProduct]:
    """recommendedForYou: as recommended_for_you, from the model version of the shopper's variant of the running
    experiment (experiments.py; an anonymous caller takes part in none), its first exposure recorded in
    `session`'s transaction."""
    session_id = check_session_id(session_id)
    subjects = subjects_of(caller, session_id)
    assignment = await experiments.assign_variant(session, subject=subjects[0]) if subjects else None
    model = (recommender.model_version(assignment.model_version)
             if assignment is not None and assignment.model_version else None)
    return await recommended_for_you(redis, recommender, settings, caller=caller, session_id=session_id,
                                     first=first, model=model)


async def similar_products(redis: Redis, recommender: Recommender, *, product_id: int,
                           first: int) -> list[ShownProduct]:
    check_first(first)
    candidates = recommender.similar(product_id, exclude=(), first=first + CANDIDATE_MARGIN)
    return await _shown(redis, candidates, recent=(), first=first)


async def bought_together(redis: Redis, recommender: Recommender, *, product_ids: Sequence[int],
                          first: int) -> list[ShownProduct]:
    """Products bought with these ones (never these themselves)."""
    check_first(first)
    if not product_ids:
        return []
    candidates = recommender.bought_together(product_ids, exclude=product_ids, first=first + CANDIDATE_MARGIN)
    return await _shown(redis, candidates, recent=(), first=first)


# ---- what the domain learns from events -------------------------------------------------------------------

def _publish_availability(session: AsyncSession, redis: Redis, product: ProductRecord | None) -> None:
    if product is None:
        return
    card = product.card if product.available else None

    async def publish() -> None:
        await signals.set_card(redis, product.product_id, card)

    after_commit(session, publish)


async def apply_interaction(session: AsyncSession, event: InteractionRecorded) -> None:
    await repository.add_interactions(session, [{
        "id": next_id(), "event_id": event.interaction_id, "subject": event.subject, "user_id": event.user_id,
        "session_id": event.session_id, "product_id": event.product_id, "kind": event.kind,
        "source": event.source, "occurred_at": event.occurred_at}])


async def apply_product_snapshot(session: AsyncSession, redis: Redis, product: ProductSnapshot) -> None:
    card = ProductCard(slug=product.slug, name=product.name, brand=product.brand, min_price=product.min_price,
                       currency=product.currency)
    await repository.put_product_snapshot(
        session, product_id=product.product_id, category_id=product.category_id, card=card, tags=product.tags,
        updated_at=product.updated_at, variant_ids=[v.variant_id for v in product.variants])
    _publish_availability(session, redis, await repository.get_product(session, product.product_id))


async def apply_product_deleted(session: AsyncSession, redis: Redis, product: ProductDeleted) -> None:
    await repository.mark_product_deleted(session, product.product_id)
    _publish_availability(session, redis, await repository.get_product(session, product.product_id))


async def apply_stock_changed(session: AsyncSession, redis: Redis, stock: StockChanged) -> None:
    product_id = await repository.set_variant_stock(session, stock.variant_id, stock.in_stock)
    if product_id is not None:
        _publish_availability(session, redis, await repository.get_product(session, product_id))


async def apply_order_paid(session: AsyncSession, redis: Redis, settings: Settings, order: OrderPaid) -> None:
    """One PURCHASE interaction per product of the order, and those products are not recommended to the buyer
    for a while."""
    product_ids = await repository.products_of_variants(session, [line.variant_id for line in order.items])
    try:
        paid_at = datetime.fromisoformat(current_envelope().timestamp)
    except LookupError:
        paid_at = utc_now()
    subject = signals.user_subject(order.user_id)
    await repository.add_interactions(session, [{
        "id": next_id(), "event_id": str(uuid.uuid5(_PURCHASE_NAMESPACE, f"{order.order_id}:{p}")),
        "subject": subject, "user_id": order.user_id, "session_id": None, "product_id": p,
        "kind": InteractionKind.PURCHASE.value, "source": "order", "occurred_at": paid_at} for p in product_ids])
    window = timedelta(days=settings.recommendations_bought_exclusion_days).total_seconds()

    async def exclude() -> None:
        await signals.mark_bought(redis, order.user_id, product_ids, window)

    after_commit(session, exclude)


# ---- training ---------------------------------------------------------------------------------------------

def to_items(products: Sequence[ProductRecord]) -> list[Any]:
    from ml.demo import Item
    return [Item(product_id=p.product_id, category_id=p.category_id, brand=p.brand, price=p.price, tags=p.tags)
            for p in products if not p.deleted]


async def training_data(session: AsyncSession, settings: Settings) -> tuple[list[Any], list[Any]]:
    """(interactions, items) of the last RECOMMENDATIONS_TRAINING_DAYS, for ml.train."""
    from ml.demo import Interaction
    items = to_items(await repository.all_products(session))
    known = {item.product_id for item in items}
    since = utc_now() - timedelta(days=settings.recommendations_training_days)
    rows = await repository.interactions_since(session, since, limit=MAX_TRAINING_INTERACTIONS)
    interactions = [Interaction(subject=r.subject, product_id=r.product_id, kind=r.kind, occurred_at=r.occurred_at)
                    for r in rows if r.product_id in known]
    return interactions, items


async def retrain_model(session_factory: async_sessionmaker[AsyncSession], redis: Redis,
                        settings: Settings) -> Any:
    """The worker's periodic job: retrain from the stored interactions and promote the new version only when its
    offline metrics are at least the current one's (ml.train.retrain decides); the RetrainOutcome, or None when
    there is no registry or too little history. One worker process at a time. Also rebuilds Redis's set of
    recommendable products from the projection, in case Redis lost it."""
    if settings.recommendations_model_dir is None:
        return None
    lock_seconds = max(60, int(settings.recommendations_retrain_interval_seconds))
    # Held for the interval (not released after a run): with two worker processes, one retrains per interval.
    if not await redis.set(RETRAIN_LOCK_KEY, "1", nx=True, ex=lock_seconds):
        return None
    try:
        return await retrain_now(session_factory, redis, settings)
    except BaseException:
        await redis.delete(RETRAIN_LOCK_KEY)  # the next run (this worker's or the other's) tries again
        raise


async def retrain_now(session_factory: async_sessionmaker[AsyncSession], redis: Redis, settings: Settings) -> Any:
    """One retrain from the stored interactions (the worker's job, or `nexuscart retrain-recommendations`); the
    RetrainOutcome, or None without a registry or with too little history. The registry's own lock keeps two
    concurrent promotions apart."""
    if settings.recommendations_model_dir is None:
        return None
    async with unit_of_work(session_factory) as session:
        await signals.replace_cards(redis, {p.product_id: p.card for p in await repository.available_products(session)
                                            if p.card is not None})
        interactions, items = await training_data(session, settings)
    if len(interactions) < MIN_TRAINING_INTERACTIONS:
        return None
    from ml.registry import ModelRegistry
    from ml.train import retrain
    registry = ModelRegistry(settings.recommendations_model_dir)
    outcome = await asyncio.to_thread(retrain, registry, interactions, items)
    log.info("recommendation model retrained", extra={"version": outcome.version, "promoted": outcome.promoted})
    return outcome


async def seed_demo_history(session: AsyncSession, settings: Settings, items: Sequence[Any],
                            shoppers: int = 300) -> str:
    """`make run`'s demo: simulated shoppers' interactions with `items` (ml.demo) stored as training data, and a
    first model trained and promoted from them when a registry is configured. Returns a one-line summary."""
    from ml.demo import simulate_shoppers
    history = simulate_shoppers(items, shoppers=shoppers)
    rows = []
    for interaction in history:
        kind, _, raw_id = interaction.subject.partition(":")
        rows.append({"id": next_id(), "event_id": str(uuid.uuid4()), "subject": interaction.subject,
                     "user_id": int(raw_id) if kind == "user" else None,
                     "session_id": raw_id if kind == "session" else None, "product_id": interaction.product_id,
                     "kind": interaction.kind, "source": "demo", "occurred_at": interaction.occurred_at})
    for start in range(0, len(rows), 2000):  # bounded statements: one row is 9 bind parameters
        await repository.add_interactions(session, rows[start:start + 2000])
    summary = f"recommendations: {len(rows)} demo interactions"
    model_dir = settings.recommendations_model_dir
    if model_dir is None or len(history) < MIN_TRAINING_INTERACTIONS:
        return summary
    from ml.registry import ModelRegistry
    from ml.train import train

    def first_model() -> str:
        registry = ModelRegistry(model_dir)
        saved = registry.save(train(history, items))
        return registry.promote(saved.version).version

    return f"{summary}, model {await asyncio.to_thread(first_model)} promoted"
