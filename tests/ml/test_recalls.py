"""Each recall finds the structure of the synthetic data; the blend tunes on validation and runs fast."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ml.datasets import Dataset
from ml.evaluation import Task, evaluate, prepare
from ml.recalls import DEFAULT_GRID, Blend, Cooccurrence, Popularity, Transitions

RANDOM_HR = 10 / 101


@pytest.fixture(scope="module")
def task(synthetic_data: Dataset) -> Task:
    return prepare(synthetic_data.sequences, synthetic_data.n_items, mode="test", seed=0)


@pytest.mark.parametrize("recall", [Popularity(), Popularity(decay=0.5), Transitions(), Cooccurrence(),
                                    Transitions(backward=True)], ids=lambda r: r.name)
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
