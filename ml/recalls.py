"""Candidate recalls: each scores a user's candidate items from the user's history alone.

Every recall has `fit(train, n_items, item_features=None)` (train: one item sequence per user, in time order; the
item features are used by the recalls that can, e.g. ml.lightfm_recall) and
`score(history, candidates)` / `score_batch(histories, candidates)` (a higher score ranks first). Scoring is a
sparse product: the histories become a (users x items) matrix of recency weights that multiplies an item-to-item
matrix learnt in `fit`, then each row's candidates are gathered. `Blend` mixes the others with weights tuned on a
validation hold-out taken from its own training sequences (never from the items it is evaluated on).
"""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp

from ml.evaluation import hit_and_ndcg, ranks, sample_negatives


def history_matrix(histories: Sequence[np.ndarray], n_items: int, last_k: int | None, decay: float) -> sp.csr_array:
    """(len(histories) x n_items): the j-th most recent item of a history weighs decay**j; only the last `last_k`
    items count (all when None); an item seen twice adds up."""
    rows, cols, vals = [], [], []
    for row, history in enumerate(histories):
        recent = np.asarray(history[-last_k:] if last_k else history)[::-1]
        rows.append(np.full(len(recent), row))
        cols.append(recent)
        vals.append(decay ** np.arange(len(recent), dtype=np.float64))
    if not rows:
        return sp.csr_array((0, n_items))
    matrix = sp.coo_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(histories), n_items))
    return matrix.tocsr()


def recency_weights(history: np.ndarray, last_k: int | None, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """One history's row of `history_matrix` as (items, weights), most recent first (an item seen twice is listed
    twice, which sums the same)."""
    recent = np.asarray(history[-last_k:] if last_k else history, dtype=np.int64)[::-1]
    return recent, decay ** np.arange(len(recent), dtype=np.float64)


def weighted_row_sum(matrix: sp.csr_array, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_i weights[i] * matrix[rows[i]] as a dense vector: one row of `weights-as-a-sparse-row @ matrix`, read
    straight from the CSR arrays. Serving scores one shopper at a time, and building scipy matrices for it
    (~0.1 ms each, several per recall) was most of a recommendation's CPU."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(matrix.shape[1])
    # The positions of every listed row's entries in indices/data, row after row.
    positions = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
    return np.bincount(matrix.indices[positions], weights=matrix.data[positions] * np.repeat(weights, lengths),
                       minlength=matrix.shape[1])


def per_history(candidates: np.ndarray, histories: int) -> np.ndarray:
    """One candidate row per history: serving passes a single row (the whole catalogue) for every history."""
    if len(candidates) == 1 and histories != 1:
        return np.broadcast_to(candidates, (histories, candidates.shape[1]))
    return candidates


def gather(scores: sp.csr_array, candidates: np.ndarray) -> np.ndarray:
    """scores[i, candidates[i, j]] as a dense (rows x candidates) array."""
    if candidates.shape[1] >= scores.shape[1] // 4:  # much of the catalogue: sparse fancy indexing is far slower
        return np.take_along_axis(np.asarray(scores.toarray(), dtype=np.float64), candidates, axis=1)
    picked = scores[np.arange(len(candidates))[:, None], candidates]
    return np.asarray(picked.toarray() if sp.issparse(picked) else picked, dtype=np.float64)


def interaction_matrix(train: Sequence[np.ndarray], n_items: int) -> sp.csr_array:
    """Binary (users x items)."""
    rows = np.repeat(np.arange(len(train)), [len(s) for s in train])
    cols = np.concatenate(list(train)) if len(train) else np.empty(0, dtype=np.int64)
    matrix = sp.coo_array((np.ones(len(cols)), (rows, cols)), shape=(len(train), n_items)).tocsr()
    matrix.data[:] = 1.0
    return matrix


# Each item's feature tokens (`category:12`, `brand:acme`, `price:band3`, `tag:wireless`), indexed by item.
ItemFeatures = Sequence[Sequence[str]]


class Recall(ABC):
    """`fit` may take each item's feature tokens; a recall that has no use for them ignores them."""
    name = "recall"

    @abstractmethod
    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self: ...

    @abstractmethod
    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray: ...

    def score(self, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return self.score_batch([history], np.asarray(candidates)[None, :])[0]

    def catalogue_max(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        """Each history's highest score over every item: a scale that does not depend on which candidates are
        scored (the evaluation scores 101 items, serving the whole catalogue)."""
        catalogue = np.broadcast_to(np.arange(n_items), (len(histories), n_items))
        return self.score_batch(histories, catalogue).max(axis=1)

    def catalogue_low(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        """Each history's lowest score over every item, or 0 when none is negative (`row_scaled`'s floor)."""
        catalogue = np.broadcast_to(np.arange(n_items), (len(histories), n_items))
        return np.minimum(self.score_batch(histories, catalogue).min(axis=1), 0.0)


class Popularity(Recall):
    """How many users interacted with the item (log-scaled to 0..1); the same for every user. With `decay` < 1 an
    interaction `d` places before the end of its user's sequence counts decay**d: the data has no timestamps, so
    this favours what users took up lately (the held-out items are everyone's latest)."""
    name = "popularity"

    def __init__(self, decay: float = 1.0) -> None:
        self.decay = decay
        self.values = np.empty(0)

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        items = np.concatenate(list(train))
        from_end = np.concatenate([np.arange(len(s))[::-1] for s in train])
        counts = np.bincount(items, weights=self.decay ** from_end.astype(np.float64), minlength=n_items)
        self.values = np.log1p(counts) / max(np.log1p(counts.max()), 1.0)
        return self

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        return self.values[candidates]


class _ItemToItem(Recall):
    """Scores = history weights @ an item-to-item matrix, gathered at the candidates."""

    def __init__(self, last_k: int | None, decay: float) -> None:
        self.last_k = last_k
        self.decay = decay
        self.n_items = 0
        self.matrix = sp.csr_array((0, 0))

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        if len(histories) == 1 and len(candidates) == 1:  # serving: one shopper, dense
            return weighted_row_sum(self.matrix, *recency_weights(histories[0], self.last_k, self.decay))[candidates]
        weights = history_matrix(histories, self.n_items, self.last_k, self.decay)
        return gather(sp.csr_array(weights @ self.matrix), candidates)

    def catalogue_max(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        weights = history_matrix(histories, self.n_items, self.last_k, self.decay)
        return np.asarray(sp.csr_array(weights @ self.matrix).max(axis=1).toarray()).ravel()

    def catalogue_low(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        return np.zeros(len(histories))  # counts and similarities are never negative


class Transitions(_ItemToItem):
    """First-order Markov chain: P(next = b | current = a) from consecutive pairs of every training sequence
    (pairs `gap` apart count 1/gap, up to `window`), smoothed by `smoothing` in the denominator; a history votes
    with its last `last_k` items, the most recent weighing most. `backward` counts the pairs the other way round
    (what users took up *before* b), a weaker signal the blend can add."""
    name = "transitions"

    def __init__(self, last_k: int = 3, decay: float = 0.5, window: int = 2, smoothing: float = 2.0,
                 backward: bool = False) -> None:
        super().__init__(last_k, decay)
        self.window = window
        self.smoothing = smoothing
        self.backward = backward
        if backward:
            self.name = "backward transitions"

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        self.n_items = n_items
        if self.backward:
            train = [seq[::-1] for seq in train]
        sources, targets, weights = [], [], []
        for gap in range(1, self.window + 1):
            for seq in train:
                if len(seq) > gap:
                    sources.append(seq[:-gap])
                    targets.append(seq[gap:])
                    weights.append(np.full(len(seq) - gap, 1.0 / gap))
        if not sources:
            self.matrix = sp.csr_array((n_items, n_items))
            return self
        counts = sp.coo_array((np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
                              shape=(n_items, n_items)).tocsr()
        counts.setdiag(0)
        counts.eliminate_zeros()
        out = np.asarray(counts.sum(axis=1)).ravel()
        self.matrix = sp.csr_array(sp.diags_array(1.0 / (out + self.smoothing)) @ counts)
        return self


class Cooccurrence(_ItemToItem):
    """Item kNN: items in the same user's history, normalised as sim(a, b) = n(a, b) / (n(a)^(1-alpha) n(b)^alpha)
    (alpha 0.5 is cosine; a smaller alpha favours popular neighbours); a history votes with all its items,
    recency-weighted by `decay`."""
    name = "co-occurrence"

    def __init__(self, alpha: float = 0.5, decay: float = 0.8, last_k: int | None = None) -> None:
        super().__init__(last_k, decay)
        self.alpha = alpha

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        self.n_items = n_items
        users = interaction_matrix(train, n_items)
        counts = sp.csr_array(users.T @ users)
        counts.setdiag(0)
        counts.eliminate_zeros()
        degree = np.asarray(users.sum(axis=0)).ravel()
        degree[degree == 0] = 1.0
        left = sp.diags_array(degree ** -(1.0 - self.alpha))
        right = sp.diags_array(degree ** -self.alpha)
        self.matrix = sp.csr_array(left @ counts @ right)
        return self


class ItemKNN(_ItemToItem):
    """Sequence-aware item kNN: a and b are neighbours when one user took b up to `window` places after a (the
    pair `gap` apart counts gap_decay**(gap - 1), the reverse order `backward` times that), each user's pairs
    damped by 1 / log2(1 + length) (a long history links many items, each link weakly: the user-side analogue of
    IDF), normalised as in `Cooccurrence` by n(a)^(1-alpha) n(b)^alpha. Unlike `Transitions` it neither stops at
    the next few items nor ignores the order, and unlike `Cooccurrence` a distant pair counts less."""
    name = "item kNN"

    def __init__(self, window: int = 20, gap_decay: float = 0.9, backward: float = 0.5, alpha: float = 0.1,
                 last_k: int | None = 10, decay: float = 0.7) -> None:
        super().__init__(last_k, decay)
        self.window = window
        self.gap_decay = gap_decay
        self.backward = backward
        self.alpha = alpha

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        self.n_items = n_items
        sources, targets, weights = [], [], []
        for seq in train:
            if len(seq) < 2:
                continue
            damping = 1.0 / np.log2(1.0 + len(seq))
            for gap in range(1, min(self.window, len(seq) - 1) + 1):
                weight = np.full(len(seq) - gap, damping * self.gap_decay ** (gap - 1))
                sources += [seq[:-gap], seq[gap:]]
                targets += [seq[gap:], seq[:-gap]]
                weights += [weight, self.backward * weight]
        if not sources:
            self.matrix = sp.csr_array((n_items, n_items))
            return self
        counts = sp.coo_array((np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
                              shape=(n_items, n_items)).tocsr()
        counts.setdiag(0)
        counts.eliminate_zeros()
        degree = np.bincount(np.concatenate([np.unique(seq) for seq in train]), minlength=n_items)
        degree = np.maximum(degree, 1).astype(np.float64)
        self.matrix = sp.csr_array(sp.diags_array(degree ** -(1.0 - self.alpha)) @ counts
                                   @ sp.diags_array(degree ** -self.alpha))
        return self


class SessionKNN(Recall):
    """User kNN (session-based kNN): the `neighbours` training users whose items are most similar (cosine over
    IDF-weighted items) to the history's last `last_k` items, recency-weighted by `decay`, vote for their own items
    with that similarity. A history is compared with every training user, so a new view counts at once."""
    name = "session kNN"

    def __init__(self, neighbours: int = 2000, last_k: int | None = 10, decay: float = 0.8) -> None:
        self.neighbours = neighbours
        self.last_k = last_k
        self.decay = decay
        self.n_items = 0
        self.idf = np.empty(0)
        self.profiles = sp.csr_array((0, 0))  # items x users: the transposed unit-length IDF-weighted user rows
        self.items_of_users = sp.csr_array((0, 0))

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        self.n_items = n_items
        users = interaction_matrix(train, n_items)
        counts = np.asarray(users.sum(axis=0)).ravel()
        self.idf = np.log((1.0 + len(train)) / (1.0 + counts))
        weighted = sp.csr_array(users @ sp.diags_array(self.idf))
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        self.profiles = sp.csr_array((sp.diags_array(1.0 / norms) @ weighted).T)
        self.items_of_users = users
        return self

    def _scores(self, histories: Sequence[np.ndarray]) -> sp.csr_array:
        weights = history_matrix(histories, self.n_items, self.last_k, self.decay)
        similarity = np.asarray(sp.csr_array(weights @ sp.diags_array(self.idf) @ self.profiles).toarray())
        k = min(self.neighbours, similarity.shape[1])
        if k == 0:
            return sp.csr_array((len(histories), self.n_items))
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(histories)), k)
        votes = sp.csr_array((np.take_along_axis(similarity, nearest, axis=1).ravel(), (rows, nearest.ravel())),
                             shape=similarity.shape)
        return sp.csr_array(votes @ self.items_of_users)

    def _scores_of_one(self, history: np.ndarray) -> np.ndarray:
        """`_scores` of a single history, dense and without scipy matrices (serving)."""
        recent, weights = recency_weights(history, self.last_k, self.decay)
        similarity = weighted_row_sum(self.profiles, recent, weights * self.idf[recent])
        k = min(self.neighbours, len(similarity))
        if k == 0:
            return np.zeros(self.n_items)
        nearest = np.argpartition(-similarity, k - 1)[:k]
        return weighted_row_sum(self.items_of_users, nearest, similarity[nearest])

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        if len(histories) == 1 and len(candidates) == 1:
            return self._scores_of_one(histories[0])[candidates]
        return gather(self._scores(histories), per_history(candidates, len(histories)))

    def catalogue_max(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        return np.asarray(self._scores(histories).max(axis=1).toarray()).ravel()

    def catalogue_low(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        return np.zeros(len(histories))  # similarities are never negative


def row_scaled(scores: np.ndarray) -> np.ndarray:
    """Each row mapped onto 0..1 by its own minimum and maximum (a factor model's scores can be negative)."""
    low = np.minimum(scores.min(axis=1, keepdims=True), 0.0)
    span = scores.max(axis=1, keepdims=True) - low
    return np.divide(scores - low, span, out=np.zeros_like(scores), where=span > 0)


# Only the ratios matter (a ranking is unchanged by scaling every weight), so popularity is on or off and the
# others move over a log-spaced range around it.
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "popularity": (0.0, 1.0),
    "transitions": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    "co-occurrence": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    "backward transitions": (0.0, 0.25, 0.5, 1.0),
}


def default_components() -> list[Recall]:
    """The blend's recalls with the settings measured best on the Amazon Games validation split."""
    return [Popularity(decay=0.5), Transitions(last_k=16, decay=0.85, window=8, smoothing=1.0),
            Cooccurrence(alpha=0.2, decay=0.7, last_k=10),
            Transitions(last_k=8, decay=0.8, window=4, smoothing=1.0, backward=True)]


@dataclass(frozen=True)
class Tuning:
    weights: dict[str, float]
    ndcg: float
    hr: float
    users: int


class Blend(Recall):
    """sum_m w_m * s_m: popularity as is (0..1), each other recall mapped onto 0..1 over each row's candidates
    (`row_scaled`), or with `scale="catalogue"` over every item of the catalogue. Serving scores the whole
    catalogue, so only the catalogue scale ranks 101 candidates in the evaluation exactly as serving ranks them
    (over the candidates, the held-out item's score is divided by the best of 101 items, not of every item).

    `fit` holds out the last item of each training sequence of >= 2 items (in the test mode of the protocol that
    is the validation item), ranks it among 100 uniform negatives for up to `tune_users` users with every weight
    of the grid (or, with `search="coordinate"`, one weight at a time), keeps the weights with the best NDCG@10,
    then refits every recall on the whole training data.
    """
    name = "blend"

    def __init__(self, components: Sequence[Recall] | None = None,
                 grid: dict[str, tuple[float, ...]] | None = None, tune_users: int = 5000,
                 search: Literal["grid", "coordinate"] = "grid",
                 scale: Literal["candidates", "catalogue"] = "candidates", seed: int = 0) -> None:
        self.components = list(components) if components is not None else default_components()
        self.grid = grid or DEFAULT_GRID
        self.tune_users = tune_users
        self.search = search
        self.scale = scale
        self.n_items = 0
        self.seed = seed
        self.weights = {c.name: 1.0 for c in self.components}
        self.tuning: Tuning | None = None

    def _component_scores(self, histories: Sequence[np.ndarray], candidates: np.ndarray,
                          components: Sequence[Recall] | None = None) -> list[np.ndarray]:
        out = []
        for component in self.components if components is None else components:
            scores = component.score_batch(histories, candidates)
            if isinstance(component, Popularity):
                out.append(scores)
            elif self.scale == "candidates" or candidates.shape[1] == self.n_items:
                out.append(row_scaled(scores))
            else:
                low = component.catalogue_low(histories, self.n_items)[:, None]
                span = component.catalogue_max(histories, self.n_items)[:, None] - low
                out.append(np.divide(scores - low, span, out=np.zeros_like(scores), where=span > 0))
        return out

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        self.n_items = n_items
        self.tuning = self._tune(train, n_items, item_features)
        self.weights = dict(self.tuning.weights)
        for component in self.components:
            component.fit(train, n_items, item_features)
        return self

    def _tune(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None) -> Tuning:
        rng = np.random.default_rng(self.seed)
        # SASRec's 100 negatives, or half the catalogue when it is small (a shop's first weeks, the demo); a user
        # who touched too many items to leave that many is not held out.
        negatives = min(100, n_items // 2)
        held = np.flatnonzero([len(s) >= 2 and n_items - len(np.unique(s)) >= negatives for s in train])
        if len(held) > self.tune_users:
            held = np.sort(rng.choice(held, size=self.tune_users, replace=False))
        held_set = set(held.tolist())
        tune_train = [s[:-1] if u in held_set else s for u, s in enumerate(train)]
        for component in self.components:
            component.fit(tune_train, n_items, item_features)
        histories = [tune_train[u] for u in held]
        candidates = np.empty((len(held), 1 + negatives), dtype=np.int64)
        for row, u in enumerate(held.tolist()):
            candidates[row, 0] = train[u][-1]
            candidates[row, 1:] = sample_negatives(rng, n_items, np.asarray(train[u]), negatives)
        parts: list[list[np.ndarray]] = [[] for _ in self.components]
        for start in range(0, len(held), 256):
            for i, scores in enumerate(self._component_scores(histories[start:start + 256],
                                                              candidates[start:start + 256])):
                parts[i].append(scores)
        stacked = [np.concatenate(p) if p else np.empty((0, 1 + negatives)) for p in parts]
        names = [c.name for c in self.components]
        grids = [self.grid.get(name, (1.0,)) for name in names]

        def tried(combo: Sequence[float]) -> Tuning:
            total = sum(w * s for w, s in zip(combo, stacked, strict=True))
            hr, ndcg = hit_and_ndcg(ranks(np.asarray(total), np.random.default_rng(self.seed)))
            return Tuning(weights=dict(zip(names, combo, strict=True)), ndcg=ndcg, hr=hr, users=len(held))

        if self.search == "coordinate":
            return self._coordinate_ascent(grids, tried)
        best: Tuning | None = None
        for combo in itertools.product(*grids):
            if not any(combo):
                continue
            tuning = tried(combo)
            if best is None or tuning.ndcg > best.ndcg:
                best = tuning
        assert best is not None
        return best

    @staticmethod
    def _coordinate_ascent(grids: Sequence[tuple[float, ...]],
                           tried: Callable[[Sequence[float]], Tuning], rounds: int = 4) -> Tuning:
        """One weight at a time over its grid values, the others held, until a round changes nothing: the grid's
        product grows with every recall added (eight recalls of six values are 1.7 million blends), this by their
        sum."""
        combo = [1.0 if 1.0 in grid else grid[len(grid) // 2] for grid in grids]
        best = tried(combo)
        for _ in range(rounds):
            improved = False
            for position, grid in enumerate(grids):
                for weight in grid:
                    candidate = [*combo[:position], weight, *combo[position + 1:]]
                    if weight == combo[position] or not any(candidate):
                        continue
                    tuning = tried(candidate)
                    if tuning.ndcg > best.ndcg:
                        best, combo, improved = tuning, candidate, True
            if not improved:
                break
        return best

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        candidates = per_history(candidates, len(histories))
        # A recall the tuning switched off (weight 0) is not scored: serving pays only for the ones that count.
        active = [c for c in self.components if self.weights[c.name]]
        parts = self._component_scores(histories, candidates, active)
        total = np.zeros(candidates.shape, dtype=np.float64)
        for component, scores in zip(active, parts, strict=True):
            total += self.weights[component.name] * scores
        return total
