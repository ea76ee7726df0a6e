"""Candidate recalls: each scores a user's candidate items from the user's history alone.

Every recall has `fit(train, n_items)` (train: one item sequence per user, in time order) and
`score(history, candidates)` / `score_batch(histories, candidates)` (a higher score ranks first). Scoring is a
sparse product: the histories become a (users x items) matrix of recency weights that multiplies an item-to-item
matrix learnt in `fit`, then each row's candidates are gathered. `Blend` mixes the others with weights tuned on a
validation hold-out taken from its own training sequences (never from the items it is evaluated on).
"""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

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


def gather(scores: sp.csr_array, candidates: np.ndarray) -> np.ndarray:
    """scores[i, candidates[i, j]] as a dense (rows x candidates) array."""
    picked = scores[np.arange(len(candidates))[:, None], candidates]
    return np.asarray(picked.toarray() if sp.issparse(picked) else picked, dtype=np.float64)


def interaction_matrix(train: Sequence[np.ndarray], n_items: int) -> sp.csr_array:
    """Binary (users x items)."""
    rows = np.repeat(np.arange(len(train)), [len(s) for s in train])
    cols = np.concatenate(list(train)) if len(train) else np.empty(0, dtype=np.int64)
    matrix = sp.coo_array((np.ones(len(cols)), (rows, cols)), shape=(len(train), n_items)).tocsr()
    matrix.data[:] = 1.0
    return matrix


class Recall(ABC):
    name = "recall"

    @abstractmethod
    def fit(self, train: Sequence[np.ndarray], n_items: int) -> Self: ...

    @abstractmethod
    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray: ...

    def score(self, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return self.score_batch([history], np.asarray(candidates)[None, :])[0]


class Popularity(Recall):
    """How many users interacted with the item (log-scaled to 0..1); the same for every user. With `decay` < 1 an
    interaction `d` places before the end of its user's sequence counts decay**d: the data has no timestamps, so
    this favours what users took up lately (the held-out items are everyone's latest)."""
    name = "popularity"

    def __init__(self, decay: float = 1.0) -> None:
        self.decay = decay
        self.values = np.empty(0)

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> Self:
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
        weights = history_matrix(histories, self.n_items, self.last_k, self.decay)
        return gather(sp.csr_array(weights @ self.matrix), candidates)


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

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> Self:
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

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> Self:
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


def _row_max_scaled(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    return np.divide(scores, top, out=np.zeros_like(scores), where=top > 0)


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
    """sum_m w_m * s_m: popularity as is (0..1), each other recall scaled by its row maximum over the candidates.

    `fit` holds out the last item of each training sequence of >= 2 items (in the test mode of the protocol that
    is the validation item), ranks it among 100 uniform negatives for up to `tune_users` users with every weight
    of the grid, keeps the weights with the best NDCG@10, then refits every recall on the whole training data.
    """
    name = "blend"

    def __init__(self, components: Sequence[Recall] | None = None,
                 grid: dict[str, tuple[float, ...]] | None = None, tune_users: int = 5000, seed: int = 0) -> None:
        self.components = list(components) if components is not None else default_components()
        self.grid = grid or DEFAULT_GRID
        self.tune_users = tune_users
        self.seed = seed
        self.weights = {c.name: 1.0 for c in self.components}
        self.tuning: Tuning | None = None

    def _component_scores(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> list[np.ndarray]:
        out = []
        for component in self.components:
            scores = component.score_batch(histories, candidates)
            out.append(scores if isinstance(component, Popularity) else _row_max_scaled(scores))
        return out

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> Self:
        self.tuning = self._tune(train, n_items)
        self.weights = dict(self.tuning.weights)
        for component in self.components:
            component.fit(train, n_items)
        return self

    def _tune(self, train: Sequence[np.ndarray], n_items: int) -> Tuning:
        rng = np.random.default_rng(self.seed)
        held = np.flatnonzero([len(s) >= 2 for s in train])
        if len(held) > self.tune_users:
            held = np.sort(rng.choice(held, size=self.tune_users, replace=False))
        held_set = set(held.tolist())
        tune_train = [s[:-1] if u in held_set else s for u, s in enumerate(train)]
        for component in self.components:
            component.fit(tune_train, n_items)
        histories = [tune_train[u] for u in held]
        candidates = np.empty((len(held), 101), dtype=np.int64)
        for row, u in enumerate(held.tolist()):
            candidates[row, 0] = train[u][-1]
            candidates[row, 1:] = sample_negatives(rng, n_items, np.asarray(train[u]), 100)
        parts: list[list[np.ndarray]] = [[] for _ in self.components]
        for start in range(0, len(held), 256):
            for i, scores in enumerate(self._component_scores(histories[start:start + 256],
                                                              candidates[start:start + 256])):
                parts[i].append(scores)
        stacked = [np.concatenate(p) if p else np.empty((0, 101)) for p in parts]
        names = [c.name for c in self.components]
        best: Tuning | None = None
        for combo in itertools.product(*(self.grid.get(name, (1.0,)) for name in names)):
            if not any(combo):
                continue
            total = sum(w * s for w, s in zip(combo, stacked, strict=True))
            hr, ndcg = hit_and_ndcg(ranks(np.asarray(total), np.random.default_rng(self.seed)))
            if best is None or ndcg > best.ndcg:
                best = Tuning(weights=dict(zip(names, combo, strict=True)), ndcg=ndcg, hr=hr, users=len(held))
        assert best is not None
        return best

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        parts = self._component_scores(histories, candidates)
        total = np.zeros(candidates.shape, dtype=np.float64)
        for component, scores in zip(self.components, parts, strict=True):
            total += self.weights[component.name] * scores
        return total
