"""The evaluation protocol of SASRec (Kang & McAuley, ICDM 2018).

Every user with at least 3 interactions is evaluated: the last item is the test item, the second-to-last the
validation item, the rest is training. The held-out item is ranked among `n_negatives` (100) items the user never
interacted with, sampled uniformly with a fixed seed (and, as a harder second view, in proportion to popularity);
HR@10 and NDCG@10 are averaged over users. Mode "valid" trains on the training part and scores the validation
item; mode "test" refits on training + validation and scores the test item. Users with fewer than 3 interactions
are never evaluated but always train.

A scorer is anything with `fit(train, n_items)` and `score_batch(histories, candidates) -> scores`, one row of
scores per history for that row's candidates (a higher score ranks first).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

Mode = Literal["valid", "test"]
MIN_INTERACTIONS = 3
BATCH = 256


class Scorer(Protocol):
    def fit(self, train: Sequence[np.ndarray], n_items: int) -> object: ...

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray: ...


def eligible_users(sequences: Sequence[np.ndarray]) -> np.ndarray:
    return np.flatnonzero(np.fromiter((len(s) >= MIN_INTERACTIONS for s in sequences), dtype=bool,
                                      count=len(sequences)))


def split(sequences: Sequence[np.ndarray], mode: Mode) -> tuple[list[np.ndarray], np.ndarray]:
    """(training sequences of every user, held-out item of each user with >= 3 interactions, or -1).

    valid: an eligible user trains on seq[:-2] and holds out seq[-2]; test: trains on seq[:-1] (train +
    validation, the refit) and holds out seq[-1]. The history a scorer sees for a user is its training sequence.
    """
    cut = 2 if mode == "valid" else 1
    train: list[np.ndarray] = []
    target = np.full(len(sequences), -1, dtype=np.int64)
    for u, seq in enumerate(sequences):
        if len(seq) >= MIN_INTERACTIONS:
            train.append(seq[:-cut])
            target[u] = seq[-cut]
        else:
            train.append(seq)
    return train, target


def sample_negatives(rng: np.random.Generator, n_items: int, exclude: np.ndarray, n: int,
                     cdf: np.ndarray | None = None) -> np.ndarray:
    """`n` distinct items outside `exclude`: uniform, or by the distribution whose CDF is given (every item needs a
    positive probability)."""
    if n_items - len(np.unique(exclude)) < n:
        raise ValueError(f"cannot sample {n} negatives from {n_items} items when {len(exclude)} are excluded")
    found = np.empty(0, dtype=np.int64)
    for _ in range(20):
        if len(found) >= n:
            return found[:n]
        size = 2 * n + len(exclude)
        if cdf is None:
            draw = rng.integers(0, n_items, size=size)
        else:
            draw = np.minimum(np.searchsorted(cdf, rng.random(size)), n_items - 1)
        merged = np.concatenate((found, draw[~np.isin(draw, exclude)]))
        _, first = np.unique(merged, return_index=True)
        found = merged[np.sort(first)]
    if len(found) >= n:
        return found[:n]
    # Rejection keeps missing (a tiny catalogue, or a user who touched most of the likely items): draw exactly.
    available = np.setdiff1d(np.arange(n_items), exclude)
    weights = np.ones(len(available)) if cdf is None else np.diff(cdf, prepend=0.0)[available]
    return rng.choice(available, size=n, replace=False, p=weights / weights.sum())


@dataclass(frozen=True)
class Task:
    """One fixed evaluation: the training sequences, the users scored and their candidates (column 0 is the
    held-out item), built once so every model is ranked on the same candidates."""
    mode: Mode
    n_items: int
    train: list[np.ndarray]
    users: np.ndarray
    uniform: np.ndarray  # users x (1 + n_negatives)
    popular: np.ndarray
    seed: int


def prepare(sequences: Sequence[np.ndarray], n_items: int, mode: Mode = "test", seed: int = 0,
            users: int | None = None, n_negatives: int = 100) -> Task:
    """Split, pick the evaluated users (all eligible ones, or a seeded sample of `users` of them, as SASRec does
    above 10,000 users) and sample their negatives; a negative is never an item of the user's whole sequence."""
    rng = np.random.default_rng(seed)
    train, target = split(sequences, mode)
    evaluated = np.flatnonzero(target >= 0)
    if users is not None and users < len(evaluated):
        evaluated = np.sort(rng.choice(evaluated, size=users, replace=False))
    # Popularity negatives: in proportion to interactions, plus one so that every item can be drawn.
    counts = np.bincount(np.concatenate(list(sequences)), minlength=n_items).astype(np.float64) + 1.0
    cdf = np.cumsum(counts) / counts.sum()
    uniform = np.empty((len(evaluated), 1 + n_negatives), dtype=np.int64)
    popular = np.empty_like(uniform)
    for row, u in enumerate(evaluated.tolist()):
        seen = np.asarray(sequences[u])
        uniform[row, 0] = popular[row, 0] = target[u]
        uniform[row, 1:] = sample_negatives(rng, n_items, seen, n_negatives)
        popular[row, 1:] = sample_negatives(rng, n_items, seen, n_negatives, cdf)
    return Task(mode=mode, n_items=n_items, train=train, users=evaluated, uniform=uniform, popular=popular,
                seed=seed)


def ranks(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0-based rank of column 0 in each row; ties with negatives are broken uniformly at random."""
    target = scores[:, :1]
    above = (scores[:, 1:] > target).sum(axis=1)
    ties = (scores[:, 1:] == target).sum(axis=1)
    return above + rng.integers(0, ties + 1)


def hit_and_ndcg(rank: np.ndarray, k: int = 10) -> tuple[float, float]:
    hit = rank < k
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(hit.mean()) if len(rank) else 0.0, float(ndcg.mean()) if len(rank) else 0.0


def score_all(scorer: Scorer, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
    out = np.empty(candidates.shape, dtype=np.float64)
    for start in range(0, len(candidates), BATCH):
        stop = start + BATCH
        out[start:stop] = scorer.score_batch(histories[start:stop], candidates[start:stop])
    return out


@dataclass(frozen=True)
class Result:
    hr: float  # HR@10, uniform negatives
    ndcg: float  # NDCG@10, uniform negatives
    hr_popular: float  # HR@10, popularity-sampled negatives
    ndcg_popular: float
    users: int
    fit_seconds: float
    score_seconds: float


def evaluate(scorer: Scorer, task: Task, k: int = 10) -> Result:
    """Fit on the task's training sequences, then rank each evaluated user's held-out item."""
    started = time.perf_counter()
    scorer.fit(task.train, task.n_items)
    fitted = time.perf_counter()
    histories = [task.train[u] for u in task.users]
    rng = np.random.default_rng(task.seed + 1)
    hr, ndcg = hit_and_ndcg(ranks(score_all(scorer, histories, task.uniform), rng), k)
    hr_pop, ndcg_pop = hit_and_ndcg(ranks(score_all(scorer, histories, task.popular), rng), k)
    return Result(hr=hr, ndcg=ndcg, hr_popular=hr_pop, ndcg_popular=ndcg_pop, users=len(task.users),
                  fit_seconds=fitted - started, score_seconds=time.perf_counter() - fitted)
