"""The served pipeline: the contract with serving (fit with optional item features, score the whole catalogue,
pickle), and on a slice of the real file (skipped when it is absent)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ml.datasets import Dataset, load_interactions, synthetic
from ml.evaluation import evaluate, prepare
from ml.lightfm_recall import LightFMRecall
from ml.pipeline import PIPELINES, SERVED, served_pipeline
from ml.recalls import ItemKNN, Popularity, Recall, SessionKNN

from .conftest import category_tokens, synthetic_categories


@pytest.fixture(scope="module")
def served(synthetic_data: Dataset) -> Recall:
    features = category_tokens(synthetic_categories())
    return served_pipeline(seed=2).fit(synthetic_data.sequences, synthetic_data.n_items, item_features=features)


def test_the_served_pipeline_is_one_of_the_evaluated_ones() -> None:
    assert SERVED in PIPELINES
    assert type(served_pipeline()) is type(PIPELINES[SERVED](0))


def test_it_scores_the_whole_catalogue_and_round_trips_through_pickle(synthetic_data: Dataset,
                                                                       served: Recall) -> None:
    histories = [synthetic_data.sequences[u] for u in (0, 1, 2)]
    catalogue = np.arange(synthetic_data.n_items)[None, :]
    scores = served.score_batch(histories, catalogue)
    assert scores.shape == (3, synthetic_data.n_items) and np.isfinite(scores).all()
    assert not np.allclose(scores[0], scores[1])  # each history gets its own ranking
    again = pickle.loads(pickle.dumps(served))
    assert np.array_equal(again.score_batch(histories, catalogue), scores)


@pytest.mark.parametrize("label", sorted(PIPELINES))
def test_every_pipeline_fits_without_item_features(label: str) -> None:
    data = synthetic(n_users=300, n_items=200, seed=3)
    model = PIPELINES[label](0).fit(data.sequences, data.n_items, item_features=None)
    histories = [np.array([0, 1]), np.array([4])]
    catalogue = np.arange(data.n_items)
    together = model.score_batch(histories, catalogue[None, :])  # serving: one catalogue row for every history
    assert together.shape == (2, data.n_items)
    for row, history in enumerate(histories):
        assert np.allclose(model.score(history, catalogue), together[row])


def test_a_slice_of_the_real_file(real_data_file: Path) -> None:
    data = load_interactions(real_data_file, max_users=2000)
    task = prepare(data.sequences, data.n_items, seed=0)
    popularity = evaluate(Popularity(), task)
    lightfm = evaluate(LightFMRecall(), task)
    assert lightfm.hr > popularity.hr and lightfm.ndcg > popularity.ndcg
    assert lightfm.hr_popular > popularity.hr_popular


def test_the_knn_recalls_beat_popularity_on_a_slice_of_the_real_file(real_data_file: Path) -> None:
    data = load_interactions(real_data_file, max_users=2000)
    task = prepare(data.sequences, data.n_items, seed=0)
    popularity = evaluate(Popularity(decay=0.5), task)
    for recall in (ItemKNN(), SessionKNN()):
        result = evaluate(recall, task)
        assert result.ndcg > popularity.ndcg, recall.name
        assert result.hr_popular > popularity.hr_popular, recall.name
