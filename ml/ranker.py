"""A learned ranker: LightGBM (lambdarank) over what the recalls say about each candidate.

Features of a (history, candidate) pair, none of which depends on which other candidates are scored (serving
scores the whole catalogue, the evaluation 101 items): each recall's raw score and that score over the history's
best score in the whole catalogue (`Recall.catalogue_max`), popularity and recency popularity,
the history's length, and how well the candidate's feature tokens match those of the history's recent items
(0 when there are no item features).

`fit` trains on a time split of its own training sequences: each training user's last item is the positive, beside
sampled negatives (half uniform, half in proportion to popularity, so the ranker cannot win by learning
popularity alone), scored by recalls fitted on what came before it; the recalls are then refitted on the whole
training data for scoring. In the test mode of the protocol that held-out item is the validation item, so the
ranker never sees the item it is evaluated on.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Self

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp

from ml.evaluation import sample_negatives
from ml.lightfm_recall import LightFMRecall
from ml.recalls import ItemFeatures, Popularity, Recall, default_components, history_matrix, per_history


def ranker_components(seed: int = 0) -> list[Recall]:
    """Plain popularity, the blend's recalls (recency popularity, transitions, co-occurrence, backward
    transitions) and LightFM."""
    return [Popularity(), *default_components(), LightFMRecall(seed=seed)]


def token_matrix(n_items: int, item_features: ItemFeatures | None) -> sp.csr_array:
    """(n_items x tokens), each row of unit length; no columns without item features."""
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for item, tokens in enumerate(item_features or ()):
        for token in dict.fromkeys(tokens):
            rows.append(item)
            cols.append(vocabulary.setdefault(token, len(vocabulary)))
    matrix = sp.coo_array((np.ones(len(rows)), (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))),
                          shape=(n_items, len(vocabulary))).tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_array(sp.diags_array(1.0 / norms) @ matrix)


@dataclass(frozen=True)
class RankerTraining:
    users: int
    rows: int
    rounds: int
    early_stopping_ndcg: float  # NDCG@10 of the ranker's own early-stopping users


class Ranker(Recall):
    """LightGBM (lambdarank, or binary) over `ranker_components()`'s scores and the features above."""
    name = "ranker (LightGBM)"

    def __init__(self, components: Sequence[Recall] | None = None, train_users: int = 20000,
                 uniform_negatives: int = 20, popular_negatives: int = 20, rounds: int = 400,
                 learning_rate: float = 0.05, leaves: int = 31, min_leaf: int = 50,
                 objective: Literal["lambdarank", "binary"] = "lambdarank", match_last_k: int = 5, threads: int = 1,
                 seed: int = 0) -> None:
        self.components = list(components) if components is not None else ranker_components(seed)
        self.train_users = train_users
        self.uniform_negatives = uniform_negatives
        self.popular_negatives = popular_negatives
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.leaves = leaves
        self.min_leaf = min_leaf
        self.objective = objective
        self.match_last_k = match_last_k
        # One thread by default: on two cores shared with other work, OpenMP's waiting threads made two threads
        # about six times slower than one (measured on lambdarank with 16,000 rows).
        self.threads = threads
        self.seed = seed
        self.n_items = 0
        self.tokens = sp.csr_array((0, 0))
        self.booster: lgb.Booster | None = None
        self.training: RankerTraining | None = None

    @property
    def feature_names(self) -> list[str]:
        recalls = [f"{c.name} (decay {c.decay:g})" if isinstance(c, Popularity) else c.name
                   for c in self.components]
        recalls += [f"{c.name} / history best" for c in self.components if not isinstance(c, Popularity)]
        # LightGBM refuses some punctuation in feature names.
        return [re.sub(r"\W+", "_", name).strip("_") for name in (*recalls, "history length", "feature match")]

    def features(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        """(rows x candidates x features)."""
        columns = [component.score_batch(histories, candidates) for component in self.components]
        for component, scores in zip(self.components, list(columns), strict=True):
            if not isinstance(component, Popularity):
                top = component.catalogue_max(histories, self.n_items)[:, None]
                columns.append(np.divide(scores, top, out=np.zeros_like(scores), where=top > 0))
        lengths = np.array([len(h) for h in histories], dtype=np.float64)
        columns.append(np.broadcast_to(lengths[:, None], candidates.shape))
        columns.append(self._feature_match(histories, candidates))
        return np.stack(columns, axis=-1)

    def _feature_match(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        """Cosine between the candidate's tokens and the recency-weighted tokens of the history's last items."""
        if self.tokens.shape[1] == 0:
            return np.zeros(candidates.shape)
        weights = history_matrix(histories, self.n_items, self.match_last_k, 0.8)
        profile = np.asarray((weights @ self.tokens).toarray())
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
        out = np.empty(candidates.shape)
        for row in range(len(candidates)):
            out[row] = self.tokens[candidates[row]] @ profile[row]
        return out

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        self.n_items = n_items
        self.tokens = token_matrix(n_items, item_features)
        rng = np.random.default_rng(self.seed)
        held = np.flatnonzero([len(s) >= 2 for s in train])
        if len(held) > self.train_users:
            held = np.sort(rng.choice(held, size=self.train_users, replace=False))
        held_set = set(held.tolist())
        prefix = [s[:-1] if u in held_set else s for u, s in enumerate(train)]
        for component in self.components:
            component.fit(prefix, n_items, item_features)
        counts = np.bincount(np.concatenate(list(prefix)), minlength=n_items).astype(np.float64) + 1.0
        cdf = np.cumsum(counts) / counts.sum()
        width = 1 + self.uniform_negatives + self.popular_negatives
        candidates = np.empty((len(held), width), dtype=np.int64)
        for row, u in enumerate(held.tolist()):
            seen = np.asarray(train[u])
            candidates[row, 0] = train[u][-1]
            uniform = sample_negatives(rng, n_items, seen, self.uniform_negatives)
            candidates[row, 1:1 + self.uniform_negatives] = uniform
            candidates[row, 1 + self.uniform_negatives:] = sample_negatives(
                rng, n_items, np.concatenate((seen, uniform)), self.popular_negatives, cdf)
        histories = [prefix[u] for u in held]
        features = np.concatenate([self.features(histories[start:start + 256], candidates[start:start + 256])
                                   for start in range(0, len(held), 256)])
        labels = np.zeros(candidates.shape)
        labels[:, 0] = 1.0
        # LightGBM's NDCG breaks ties by position: with the positive always first, a tree that cannot tell the
        # candidates apart would look perfect and stop the boosting at once.
        order = rng.permuted(np.broadcast_to(np.arange(candidates.shape[1]), candidates.shape), axis=1)
        features = np.take_along_axis(features, order[:, :, None], axis=1)
        labels = np.take_along_axis(labels, order, axis=1)
        self.booster, self.training = self._train(features, labels, rng)
        for component in self.components:
            component.fit(train, n_items, item_features)
        return self

    def _train(self, features: np.ndarray, labels: np.ndarray,
               rng: np.random.Generator) -> tuple[lgb.Booster, RankerTraining]:
        """Lambdarank, one query per user; a tenth of the users stops the boosting when NDCG@10 stops improving."""
        users, width, n_features = features.shape
        stopping = np.less(rng.random(users), 0.1)
        params = {"objective": self.objective, "metric": "ndcg", "eval_at": [10], "learning_rate": self.learning_rate,
                  "num_leaves": self.leaves, "min_data_in_leaf": self.min_leaf, "feature_fraction": 0.9,
                  "bagging_fraction": 0.8, "bagging_freq": 1, "lambdarank_truncation_level": 20,
                  "num_threads": self.threads, "seed": self.seed, "verbosity": -1}

        def dataset(mask: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
            return lgb.Dataset(features[mask].reshape(-1, n_features), labels[mask].ravel(),
                               group=np.full(int(mask.sum()), width), feature_name=self.feature_names,
                               reference=reference, free_raw_data=True)

        learn = dataset(np.logical_not(stopping))
        held_out = dataset(stopping, learn)
        recorded: dict[str, dict[str, list[float]]] = {}
        booster = lgb.train(params, learn, num_boost_round=self.rounds, valid_sets=[held_out],
                            valid_names=["stopping"],
                            callbacks=[lgb.early_stopping(30, verbose=False), lgb.record_evaluation(recorded)])
        best = booster.best_iteration or self.rounds
        ndcg = recorded["stopping"]["ndcg@10"][best - 1]
        return booster, RankerTraining(users=users, rows=users * width, rounds=best, early_stopping_ndcg=ndcg)

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("the ranker is not fitted")
        candidates = per_history(candidates, len(histories))
        features = self.features(histories, candidates)
        scores = self.booster.predict(features.reshape(-1, features.shape[-1]),
                                      num_iteration=self.booster.best_iteration or None)
        return np.asarray(scores, dtype=np.float64).reshape(candidates.shape)
