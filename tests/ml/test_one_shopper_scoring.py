"""Serving scores one shopper at a time through a dense path (ml.recalls.weighted_row_sum) instead of the sparse
batch products the offline evaluation uses; both must give a shopper the same scores, duplicates and short
histories included, for every recall of the served pipeline."""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp

from ml.demo import demo_catalogue, simulate_shoppers
from ml.recalls import Blend, history_matrix, recency_weights, weighted_row_sum
from ml.train import train


@pytest.fixture(scope="module")
def pipeline() -> Blend:
    catalogue = demo_catalogue(products=120, seed=5)
    shoppers = simulate_shoppers(catalogue, shoppers=200, seed=5, now=datetime(2026, 3, 1, tzinfo=UTC))
    blend = train(shoppers, catalogue, seed=0).model.pipeline
    assert isinstance(blend, Blend)
    return blend


HISTORIES = [np.array([3]), np.array([5, 9, 5, 40]), np.array(list(range(0, 60, 3))), np.array([7, 7, 7])]


@pytest.mark.parametrize("history", HISTORIES, ids=["one item", "a repeat", "longer than last_k", "one item thrice"])
def test_one_shopper_scores_as_in_a_batch(pipeline: Blend, history: np.ndarray) -> None:
    every_item = np.arange(pipeline.n_items)[None, :]
    other = np.array([11, 2, 30])
    for recall in [*pipeline.components, pipeline]:
        alone = recall.score_batch([history], every_item)[0]
        in_batch = recall.score_batch([history, other], every_item)[0]
        assert alone.shape == (pipeline.n_items,)
        np.testing.assert_allclose(alone, in_batch, rtol=1e-5, atol=1e-7, err_msg=recall.name)


def test_weighted_row_sum_is_the_sparse_product() -> None:
    rng = np.random.default_rng(0)
    matrix = sp.csr_array(sp.random_array((50, 70), density=0.1, random_state=rng))
    recent, weights = recency_weights(np.array([4, 0, 49, 4, 17]), last_k=4, decay=0.5)
    expected = (history_matrix([np.array([4, 0, 49, 4, 17])], 50, last_k=4, decay=0.5) @ matrix).toarray()[0]
    np.testing.assert_allclose(weighted_row_sum(matrix, recent, weights), expected)
    assert not weighted_row_sum(matrix, np.array([], dtype=np.int64), np.array([])).any()
