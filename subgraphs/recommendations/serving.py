"""What a subgraph process recommends from, kept in memory so that a request does no SQL: the served model
(ml/registry.py's current version, or a version an experiment assigns) and the catalogue (this domain's
projection: each product's category, and popularity from recent interactions), which answers whatever the model
cannot: no model yet, products newer than the model, shoppers whose items it does not know.

Both are refreshed off the request path: a request that finds them older than RECOMMENDATIONS_REFRESH_SECONDS
starts one background refresh and answers from what is loaded. Only the first request of a process waits for
the catalogue. Which products may be shown at all (in stock, not deleted, not just bought) is not decided here but
from Redis (signals.py), which the consumers keep current to the event.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from subgraphs.recommendations import repository

if TYPE_CHECKING:
    from ml.serving import ServingModel

log = logging.getLogger("nexuscart.recommendations")

POPULARITY_DAYS = 30
# Loaded registry versions kept besides the current one (experiments' arms).
MAX_PINNED_VERSIONS = 4


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """The products that exist (not deleted), most popular first, overall and per category."""
    category_of: dict[int, int | None]
    popular: tuple[int, ...]
    popular_in: dict[int, tuple[int, ...]]

    @classmethod
    def build(cls, categories: dict[int, int | None], counts: dict[int, int]) -> Catalogue:
        # Ties (nobody interacted yet) go to the newest product: ids grow with time.
        ranked = tuple(sorted(categories, key=lambda p: (-counts.get(p, 0), -p)))
        by_category: dict[int, list[int]] = defaultdict(list)
        for product_id in ranked:
            category = categories[product_id]
            if category is not None:
                by_category[category].append(product_id)
        return cls(category_of=categories, popular=ranked,
                   popular_in={c: tuple(ps) for c, ps in by_category.items()})

    def knows(self, product_id: int) -> bool:
        return product_id in self.category_of

    def categories_of(self, product_ids: Iterable[int]) -> list[int]:
        """Their categories, each once, in the order of the products."""
        found: dict[int, None] = {}
        for product_id in product_ids:
            category = self.category_of.get(product_id)
            if category is not None:
                found.setdefault(category)
        return list(found)

    def in_categories(self, categories: Sequence[int], *, exclude: Collection[int], first: int) -> list[int]:
        """The most popular of each category in turn: all of the first category's before the next one's."""
        out: list[int] = []
        for category in categories:
            for product_id in self.popular_in.get(category, ()):
                if product_id not in exclude:
                    out.append(product_id)
                    if len(out) >= first:
                        return out
        return out

    def most_popular(self, *, exclude: Collection[int], first: int) -> list[int]:
        out: list[int] = []
        for product_id in self.popular:
            if product_id not in exclude:
                out.append(product_id)
                if len(out) >= first:
                    break
        return out


EMPTY_CATALOGUE = Catalogue(category_of={}, popular=(), popular_in={})


def merge_ranked(*lists: Iterable[int]) -> list[int]:
    """The lists one after the other, each product at its first place."""
    return list(dict.fromkeys(p for ranked in lists for p in ranked))


class Recommender:
    """One per process (the app's extras): the model and the catalogue, and how they are refreshed."""

    def __init__(self, model_dir: Path | None, refresh_seconds: float) -> None:
        self.model_dir = model_dir
        self.refresh_seconds = refresh_seconds
        self.model: ServingModel | None = None
        self.catalogue = EMPTY_CATALOGUE
        self._marker: Any = None
        self._pinned: dict[str, ServingModel] = {}
        self._refreshed_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._first_refresh = asyncio.Lock()

    # ---- loading ------------------------------------------------------------------------------------------

    def _registry(self) -> Any:
        if self.model_dir is None:
            return None
        from ml.registry import ModelRegistry
        return ModelRegistry(self.model_dir)

    def load_current_model(self) -> None:
        """The registry's current version, when it changed since the last look (a file stat otherwise)."""
        registry = self._registry()
        if registry is None:
            return
        marker = registry.current_marker()
        if marker is None or marker == self._marker:
            return
        model = registry.load()
        self.model, self._marker = model, marker
        log.info("recommendation model loaded", extra={"version": model.version})

    def model_version(self, version: str) -> ServingModel | None:
        """A registry version by name (an experiment's arm), loaded once; None when it cannot be loaded."""
        if self.model is not None and self.model.version == version:
            return self.model
        model = self._pinned.get(version)
        if model is None:
            registry = self._registry()
            if registry is None:
                return None
            try:
                model = registry.load(version)
            except Exception:  # noqa: BLE001 - an arm naming a missing version falls back to the current model
                log.warning("could not load a pinned model version", extra={"version": version})
                return None
            if len(self._pinned) >= MAX_PINNED_VERSIONS:
                self._pinned.pop(next(iter(self._pinned)))
            self._pinned[version] = model
        return model

    async def load_catalogue(self, session: AsyncSession) -> None:
        since = datetime.now(UTC) - timedelta(days=POPULARITY_DAYS)
        categories = {p.product_id: p.category_id for p in await repository.all_products(session) if not p.deleted}
        self.catalogue = Catalogue.build(categories, await repository.popularity_since(session, since))

    async def refresh(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        try:
            async with session_factory() as session:
                await self.load_catalogue(session)
            await asyncio.to_thread(self.load_current_model)
        except Exception:  # a failed refresh keeps serving what is loaded; the next one retries
            log.exception("recommendations refresh failed")
        finally:
            self._refreshed_at = time.monotonic()

    async def ensure_fresh(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        """On the request path: waits only for a process's first load, else at most starts a background refresh."""
        if self._refreshed_at is None:
            async with self._first_refresh:
                if self._refreshed_at is None:
                    await self.refresh(session_factory)
            return
        stale = time.monotonic() - self._refreshed_at >= self.refresh_seconds
        if stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self.refresh(session_factory))

    # ---- answers (candidates: the caller keeps what may be shown) ---------------------------------------------

    def for_shopper(self, recent: Sequence[int], *, exclude: Collection[int], first: int,
                    categories: Sequence[int] = (), model: ServingModel | None = None) -> list[int]:
        """Candidates for a shopper whose recent products are `recent` (newest last), best first: the model's
        personal ranking when it knows one of them; the products of the categories just looked at (newest first);
        then the most popular."""
        model = model or self.model
        touched = merge_ranked(self.catalogue.categories_of(reversed(recent)), categories)
        by_category = self.catalogue.in_categories(touched, exclude=exclude, first=first)
        personal: list[int] = []
        if model is not None:
            if any(model.knows(p) for p in recent):
                personal = model.recommend(recent, exclude=exclude, first=first, categories=touched)
            else:
                by_category = merge_ranked(by_category, model.popular(categories=touched, exclude=exclude,
                                                                      first=first))
        return merge_ranked(personal, by_category, self.catalogue.most_popular(exclude=exclude, first=first))

    def similar(self, product_id: int, *, exclude: Collection[int], first: int) -> list[int]:
        """The model's similar products, then the most popular of the same category (a product newer than the
        model has similar products from its first day)."""
        exclude = {*exclude, product_id}
        learned = self.model.similar(product_id, exclude=exclude, first=first) if self.model is not None else []
        same_category = self.catalogue.in_categories(self.catalogue.categories_of([product_id]), exclude=exclude,
                                                     first=first)
        return merge_ranked(learned, same_category)

    def bought_together(self, product_ids: Sequence[int], *, exclude: Collection[int], first: int) -> list[int]:
        """What is bought with these products, then the most popular of their categories."""
        exclude = {*exclude, *product_ids}
        learned = (self.model.bought_together(product_ids, exclude=exclude, first=first)
                   if self.model is not None else [])
        same_category = self.catalogue.in_categories(self.catalogue.categories_of(product_ids), exclude=exclude,
                                                     first=first)
        return merge_ranked(learned, same_category)
