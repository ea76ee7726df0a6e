"""The model the recommendations subgraph serves: the fitted personalised pipeline plus the item-to-item and
popularity tables it answers from, keyed by the platform's product ids.

Everything is a numpy array or a scipy sparse matrix built once by `ml.train`, so a `ServingModel` pickles into the
registry and answers without touching the training data. `recommend` scores every known item with the served
pipeline (`ml.pipeline.served_pipeline`) from the shopper's recent items alone, so a new view changes the answer
at once; the other answers are sparse rows of precomputed matrices and popularity orders.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from ml.recalls import Recall, weighted_row_sum

# similar(): co-viewing decides the order; feature similarity (category, brand, tags, price band) only orders what
# co-viewing leaves tied (and everything for an item nobody co-viewed yet), popularity breaks what remains tied.
FEATURE_WEIGHT = 0.1
TIE_BREAK_WEIGHT = 1e-3
NO_CATEGORY = -1


@dataclass(frozen=True)
class ItemTables:
    """What `ml.train` learns beside the pipeline, all indexed by item index (0..n_items-1)."""
    product_ids: np.ndarray  # int64, product id of each item index
    category: np.ndarray  # int64, category id or NO_CATEGORY
    popularity: np.ndarray  # float64 in 0..1, kind-weighted interest (log-scaled)
    covisits: sp.csr_array  # items x items, cosine of "interacted with by the same subject", diagonal 0
    baskets: sp.csr_array  # items x items, cosine of "in the same basket" (add-to-cart / purchase), diagonal 0
    features: sp.csr_array  # items x tokens, rows L2-normalised, so features @ features.T is a cosine


class ServingModel:
    def __init__(self, pipeline: Recall, tables: ItemTables, trained_at: datetime) -> None:
        self.version = ""  # the registry sets it when it saves the model
        self.trained_at = trained_at
        self.pipeline = pipeline
        self.tables = tables
        self.n_items = len(tables.product_ids)
        self.index_of = {int(product): index for index, product in enumerate(tables.product_ids.tolist())}
        self.all_items = np.arange(self.n_items)[None, :]
        # Every item in descending popularity: popular() walks it and stops as soon as it has enough.
        self.by_popularity = np.argsort(-tables.popularity, kind="stable")
        self.by_category: dict[int, np.ndarray] = {}
        for category in np.unique(tables.category).tolist():
            if category != NO_CATEGORY:
                in_order = self.by_popularity[tables.category[self.by_popularity] == category]
                self.by_category[int(category)] = in_order

    def knows(self, product_id: int) -> bool:
        return product_id in self.index_of

    def recommend(self, recent: Sequence[int], *, exclude: Collection[int], first: int,
                  categories: Sequence[int] = ()) -> list[int]:
        """Personalised from `recent` (oldest first, newest last; unknown ids ignored). Items the pipeline scores
        alike are ordered by the popularity of the shopper's categories (those of `recent` and `categories`), then
        overall; with no known recent item it is `popular(categories=...)`."""
        if first <= 0:
            return []
        history = np.fromiter((self.index_of[p] for p in recent if p in self.index_of), dtype=np.int64)
        if not len(history):
            return self.popular(categories=categories, exclude=exclude, first=first)
        scores = np.asarray(self.pipeline.score_batch([history], self.all_items)[0], dtype=np.float64)
        touched = set(categories) | set(self.tables.category[history].tolist())
        touched.discard(NO_CATEGORY)
        tie_break = self.tables.popularity.copy()
        if touched:
            tie_break += np.isin(self.tables.category, list(touched))
        scores = scores + TIE_BREAK_WEIGHT * tie_break
        return self._top(scores, exclude, first)

    def similar(self, product_id: int, *, exclude: Collection[int], first: int) -> list[int]:
        """Items co-viewed with the product first (by cosine), then by shared features; [] for an unknown product,
        so the caller can fall back to what it knows (same-category products)."""
        index = self.index_of.get(product_id)
        if index is None or first <= 0:
            return []
        scores = self._similarity(np.array([index]))
        return self._top(scores, {*exclude, product_id}, first, positive_only=True)

    def bought_together(self, product_ids: Sequence[int], *, exclude: Collection[int], first: int) -> list[int]:
        """Items put in the same baskets as `product_ids`; filled up with `similar` items when the baskets run
        out."""
        indices = np.fromiter((self.index_of[p] for p in product_ids if p in self.index_of), dtype=np.int64)
        if not len(indices) or first <= 0:
            return []
        skip = {*exclude, *product_ids}
        in_baskets = _row_sum(self.tables.baskets, indices)
        found = self._top(self._with_tie_break(in_baskets), skip, first, positive_only=True)
        if len(found) < first:
            fill = self._top(self._similarity(indices), skip | set(found), first - len(found), positive_only=True)
            found += fill
        return found

    def popular(self, *, categories: Sequence[int] = (), exclude: Collection[int], first: int) -> list[int]:
        """The most popular items of `categories` (all of them ranked together), then the most popular overall."""
        if first <= 0:
            return []
        wanted = [self.by_category[c] for c in dict.fromkeys(categories) if c in self.by_category]
        found: list[int] = []
        if wanted:
            merged = np.concatenate(wanted)
            in_category = merged[np.argsort(-self.tables.popularity[merged], kind="stable")]
            found = self._take(in_category, set(exclude), first)
        if len(found) < first:
            found += self._take(self.by_popularity, {*exclude, *found}, first - len(found))
        return found

    def _similarity(self, indices: np.ndarray) -> np.ndarray:
        covisits = _row_sum(self.tables.covisits, indices)
        features = self.tables.features
        # sum over i of features[i] . features[j] for every j: the summed feature rows against every item.
        shared = np.asarray(features @ _row_sum(features, indices)) if features.shape[1] else 0.0
        return self._with_tie_break(covisits + FEATURE_WEIGHT * shared)

    def _with_tie_break(self, scores: np.ndarray) -> np.ndarray:
        # Popularity orders ties, but only among items related at all (an unrelated item must stay at 0).
        return np.where(scores > 0, scores + TIE_BREAK_WEIGHT * self.tables.popularity, 0.0)

    def _top(self, scores: np.ndarray, exclude: Collection[int], first: int, *,
             positive_only: bool = False) -> list[int]:
        """The ids of the `first` best-scoring items outside `exclude`, best first."""
        scores = scores.copy()
        blocked = [self.index_of[p] for p in exclude if p in self.index_of]
        scores[blocked] = -np.inf
        if positive_only:
            scores[scores <= 0] = -np.inf
        wanted = min(first, self.n_items)
        if wanted <= 0:
            return []
        best = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < self.n_items else np.arange(self.n_items)
        best = best[np.lexsort((best, -scores[best]))]  # score, then item index: a stable answer for ties
        best = best[np.isfinite(scores[best])]
        return [int(p) for p in self.tables.product_ids[best]]

    def _take(self, ordered: np.ndarray, exclude: set[int], count: int) -> list[int]:
        """The first `count` ids of `ordered` (item indices) outside `exclude`, reading as few as needed."""
        found: list[int] = []
        chunk = count + len(exclude)
        for start in range(0, len(ordered), chunk):
            # tolist() turns a slice into Python ints at once; walking numpy scalars one by one is far slower.
            for product in self.tables.product_ids[ordered[start:start + chunk]].tolist():
                if product not in exclude:
                    found.append(product)
                    if len(found) == count:
                        return found
        return found


def _row_sum(matrix: sp.csr_array, rows: np.ndarray) -> np.ndarray:
    return weighted_row_sum(matrix, rows, np.ones(len(rows)))

