"""LightFM (WARP) as a hybrid recall that needs no user id.

A user is described only by the last `last_k` items of the history (recency-weighted user features), so scoring a
history is a sparse product and a new view moves the user's vector at once, without retraining. An item is its
identity plus its feature tokens (`category:12`, `brand:acme`, ...): an item nobody has interacted with yet is
described by its tokens alone, so a new product with a known category or brand has a useful vector on day one.

After `fit` only plain arrays are kept (no LightFM object), so the fitted recall pickles small and scores without
LightFM's extension.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM  # type: ignore[import-untyped]

from ml.recalls import ItemFeatures, Recall, history_matrix, interaction_matrix, recency_weights


def _row_normalised(matrix: sp.csr_array) -> sp.csr_array:
    """Rows summing to 1: LightFM adds feature embeddings weighted by the values, and a user with many features
    (or an item with many tokens) would otherwise get a vector of a different scale."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_array(sp.diags_array(1.0 / sums) @ matrix)


def item_feature_matrix(train: Sequence[np.ndarray], n_items: int,
                        item_features: ItemFeatures | None) -> tuple[sp.csr_array, dict[str, int]]:
    """(n_items x (n_items + tokens)), rows normalised: the identity column of every item seen in `train`, then one
    column per token. An item never seen in training keeps only its tokens: an identity embedding trained only as
    a negative would push a new product down for no reason of its own."""
    seen = np.zeros(n_items, dtype=bool)
    for seq in train:
        seen[seq] = True
    rows = [np.flatnonzero(seen)]
    cols = [np.flatnonzero(seen)]
    vocabulary: dict[str, int] = {}
    for item, tokens in enumerate(item_features or ()):
        for token in dict.fromkeys(tokens):  # a repeated token counts once
            column = vocabulary.setdefault(token, n_items + len(vocabulary))
            rows.append(np.array([item]))
            cols.append(np.array([column]))
    row_index, col_index = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.coo_array((np.ones(len(row_index)), (row_index, col_index)),
                          shape=(n_items, n_items + len(vocabulary))).tocsr()
    return _row_normalised(matrix), vocabulary


def _csr_for_lightfm(matrix: sp.csr_array) -> sp.csr_matrix:
    """LightFM's extension takes float32 values and int32 indices only."""
    out = sp.csr_matrix(matrix, dtype=np.float32)
    out.indices = out.indices.astype(np.int32)
    out.indptr = out.indptr.astype(np.int32)
    return out


class LightFMRecall(Recall):
    """LightFM trained with the WARP loss on (user x item) interactions, where a user's features are the last
    `last_k` items of the user's training sequence (the j-th most recent weighing `decay**j`); scores are the dot
    product of the history's vector with each candidate's vector, plus the candidate's bias."""
    name = "LightFM (WARP)"

    def __init__(self, components: int = 64, epochs: int = 10, learning_rate: float = 0.05, last_k: int = 3,
                 decay: float = 0.7, item_alpha: float = 1e-6, user_alpha: float = 1e-6, max_sampled: int = 50,
                 threads: int = 2, seed: int = 0) -> None:
        self.components = components
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.last_k = last_k
        self.decay = decay
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.threads = threads
        self.seed = seed
        self.n_items = 0
        self.history_embeddings = np.empty((0, components), dtype=np.float32)  # one row per item, user side
        self.item_vectors = np.empty((0, components), dtype=np.float32)
        self.item_bias = np.empty(0, dtype=np.float32)

    def user_features(self, histories: Sequence[np.ndarray]) -> sp.csr_array:
        return _row_normalised(history_matrix(histories, self.n_items, self.last_k, self.decay))

    def fit(self, train: Sequence[np.ndarray], n_items: int, item_features: ItemFeatures | None = None) -> Self:
        self.n_items = n_items
        items, _ = item_feature_matrix(train, n_items, item_features)
        model = LightFM(loss="warp", no_components=self.components, learning_rate=self.learning_rate,
                        item_alpha=self.item_alpha, user_alpha=self.user_alpha, max_sampled=self.max_sampled,
                        random_state=np.random.RandomState(self.seed))
        interactions = _csr_for_lightfm(interaction_matrix(train, n_items)).tocoo()
        model.fit(interactions, user_features=_csr_for_lightfm(self.user_features(train)),
                  item_features=_csr_for_lightfm(items), epochs=self.epochs, num_threads=self.threads)
        self.history_embeddings = np.asarray(model.user_embeddings, dtype=np.float32)
        self.item_vectors = np.asarray(items @ model.item_embeddings, dtype=np.float32)
        self.item_bias = np.asarray(items @ model.item_biases, dtype=np.float32)
        return self

    def catalogue_max(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        return np.asarray(self._catalogue_scores(histories).max(axis=1), dtype=np.float64)

    def catalogue_low(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        return np.minimum(self._catalogue_scores(histories).min(axis=1), 0.0).astype(np.float64)

    def _catalogue_scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        users = np.asarray(self.user_features(histories) @ self.history_embeddings, dtype=np.float32)
        return np.asarray(users @ self.item_vectors.T + self.item_bias)

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        if len(histories) == 1:  # serving: one shopper, without scipy matrices
            recent, weights = recency_weights(histories[0], self.last_k, self.decay)
            total = weights.sum() or 1.0
            users = np.asarray((weights / total) @ self.history_embeddings[recent], dtype=np.float32)[None, :]
        else:
            users = np.asarray(self.user_features(histories) @ self.history_embeddings, dtype=np.float32)
        if len(candidates) == 1:  # one candidate row shared by every history
            shared = candidates[0]
            return (users @ self.item_vectors[shared].T + self.item_bias[shared]).astype(np.float64)
        picked = self.item_vectors[candidates]  # rows x candidates x components
        return (np.einsum("rcd,rd->rc", picked, users) + self.item_bias[candidates]).astype(np.float64)
