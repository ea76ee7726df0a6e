"""Each recall finds the structure of the synthetic data; the blend tunes on validation and runs fast."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ml.datasets import Dataset
from ml.evaluation import Task, evaluate, prepare
from ml.lightfm_recall import LightFMRecall
from ml.recalls import DEFAULT_GRID, Blend, Cooccurrence, ItemKNN, Popularity, SessionKNN, Transitions

RANDOM_HR = 10 / 101


@pytest.fixture(scope="module")
def task(synthetic_data: Dataset) -> Task:
    return prepare(synthetic_data.sequences, synthetic_data.n_items, mode="test", seed=0)


@pytest.mark.parametrize("recall", [Popularity(), Popularity(decay=0.5), Transitions(), Cooccurrence(),
                                    Transitions(backward=True), ItemKNN(), SessionKNN()], ids=lambda r: r.name)
def test_each_recall_beats_random(task: Task, recall) -> None:
    result = evaluate(recall, task)
    assert result.hr > RANDOM_HR + 0.05  # 2,000 users: random stays within ~0.03 of 10/101
    assert result.ndcg > 0.07


def test_score_of_one_history_matches_the_batch(synthetic_data: Dataset) -> None:
    recall = Transitions().fit(synthetic_data.sequences, synthetic_data.n_items)
    histories = synthetic_data.sequences[:3]
    candidates = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    batch = recall.score_batch(histories, candidates)
    for row in range(3):
        assert np.allclose(recall.score(histories[row], candidates[row]), batch[row])


def test_transitions_follow_the_last_item() -> None:
    train = [np.array([0, 1, 2]), np.array([0, 1, 3]), np.array([4, 2])]
    recall = Transitions(last_k=1, window=1).fit(train, 5)
    scores = recall.score(np.array([4, 0]), np.array([1, 2, 3]))
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0
    backward = Transitions(last_k=1, window=1, backward=True).fit(train, 5)
    assert backward.name == "backward transitions"
    assert backward.score(np.array([3, 1]), np.array([0, 2, 4])).tolist() == [0.5, 0.0, 0.0]  # 2 of 2, smoothed by 2


def test_cooccurrence_counts_items_of_the_same_history_in_either_order() -> None:
    train = [np.array([0, 1]), np.array([1, 0]), np.array([2, 3])]
    recall = Cooccurrence().fit(train, 4)
    assert recall.score(np.array([0]), np.array([1, 2, 3])) == pytest.approx([1.0, 0.0, 0.0])


def test_the_blend_tunes_on_validation_and_runs_in_seconds(task: Task) -> None:
    started = time.perf_counter()
    blend = Blend(tune_users=1000)
    result = evaluate(blend, task)
    assert time.perf_counter() - started < 10
    assert blend.tuning is not None and blend.tuning.users == 1000
    assert all(weight in DEFAULT_GRID[name] for name, weight in blend.weights.items())
    assert result.hr > evaluate(Popularity(), task).hr


def test_recency_weighted_popularity_favours_items_taken_up_late() -> None:
    train = [np.array([0, 1]), np.array([0, 1]), np.array([0, 2])]
    plain, recent = Popularity().fit(train, 3), Popularity(decay=0.5).fit(train, 3)
    assert plain.score(np.array([]), np.array([0, 1]))[0] > plain.score(np.array([]), np.array([0, 1]))[1]
    assert recent.score(np.array([]), np.array([0, 1]))[0] < recent.score(np.array([]), np.array([0, 1]))[1]


def test_item_knn_links_items_a_few_places_apart_and_weighs_the_near_ones_more() -> None:
    train = [np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3])]
    recall = ItemKNN(window=2, gap_decay=0.5, backward=0.0, last_k=1).fit(train, 5)
    next_one, two_later, three_later, never = recall.score(np.array([0]), np.array([1, 2, 3, 4]))
    assert next_one > two_later > 0
    assert three_later == 0 and never == 0  # beyond the window, and never taken up
    assert recall.score(np.array([3]), np.array([0, 1, 2])).tolist() == [0.0, 0.0, 0.0]  # no backward weight


def test_session_knn_recommends_what_similar_users_took_up() -> None:
    train = [np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([3, 4, 5])]
    recall = SessionKNN(neighbours=1).fit(train, 6)
    scores = recall.score(np.array([0, 1]), np.array([2, 5]))
    assert scores[0] > 0 and scores[1] == 0
    assert recall.score(np.array([3]), np.array([2, 5]))[1] > 0
    catalogue = np.arange(6)
    assert recall.catalogue_max([np.array([0, 1])], 6)[0] == recall.score(np.array([0, 1]), catalogue).max()


def test_coordinate_search_keeps_grid_weights_and_matches_the_grid(task: Task) -> None:
    grid = {**DEFAULT_GRID, "backward transitions": (0.0, 1.0)}
    searched = Blend(grid=grid, tune_users=1000, search="coordinate").fit(task.train, task.n_items)
    exhaustive = Blend(grid=grid, tune_users=1000).fit(task.train, task.n_items)
    assert searched.tuning is not None and exhaustive.tuning is not None
    assert all(weight in grid[name] for name, weight in searched.weights.items())
    # One weight at a time cannot beat every combination, and on this data it gets close to it.
    assert exhaustive.tuning.ndcg - 0.01 <= searched.tuning.ndcg <= exhaustive.tuning.ndcg


def test_a_catalogue_scaled_blend_ranks_candidates_as_it_ranks_the_whole_catalogue(synthetic_data: Dataset) -> None:
    # LightFM's scores can be negative: its floor is its catalogue minimum, the others' 0.
    components = [Popularity(decay=0.5), Transitions(), ItemKNN(), SessionKNN(),
                  LightFMRecall(epochs=3, threads=1, seed=1)]
    blend = Blend(components=components, tune_users=300, search="coordinate", scale="catalogue")
    blend.fit(synthetic_data.sequences, synthetic_data.n_items)
    histories = synthetic_data.sequences[:4]
    whole = blend.score_batch(histories, np.arange(synthetic_data.n_items)[None, :])
    candidates = np.random.default_rng(0).choice(synthetic_data.n_items, size=(4, 101), replace=False)
    # Up to float32 rounding: LightFM scores a candidate row and the whole catalogue by different products.
    assert np.allclose(blend.score_batch(histories, candidates), np.take_along_axis(whole, candidates, axis=1),
                       atol=1e-5)
    by_candidates = Blend(components=components, tune_users=300, search="coordinate")
    by_candidates.weights = blend.weights
    by_candidates.n_items = synthetic_data.n_items
    assert not np.allclose(by_candidates.score_batch(histories, candidates),
                           np.take_along_axis(whole, candidates, axis=1))  # what the default scale gets wrong
