"""The SASRec protocol (ml.evaluation) on hand-made and synthetic data."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from ml.datasets import Dataset
from ml.evaluation import evaluate, prepare, ranks, sample_negatives, split
from ml.recalls import Popularity

TINY = [np.array([0, 1, 2, 3]), np.array([4, 5, 6]), np.array([7, 8]), np.array([9, 3, 1, 0, 5])]


class Oracle:
    """Knows the answer: the held-out item is always column 0 of the candidates."""

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> None:
        pass

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        return (candidates == candidates[:, :1]).astype(float)


class RandomScorer:
    def __init__(self, seed: int = 3) -> None:
        self.rng = np.random.default_rng(seed)

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> None:
        pass

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        return self.rng.random(candidates.shape)


class Constant(RandomScorer):
    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        return np.zeros(candidates.shape)


def test_the_split_holds_out_the_last_item_for_test_and_the_one_before_for_validation() -> None:
    train, target = split(TINY, "test")
    assert target.tolist() == [3, 6, -1, 5]  # the 2-item user is never evaluated
    assert [t.tolist() for t in train] == [[0, 1, 2], [4, 5], [7, 8], [9, 3, 1, 0]]  # refit: train + validation

    train, target = split(TINY, "valid")
    assert target.tolist() == [2, 5, -1, 0]
    assert [t.tolist() for t in train] == [[0, 1], [4], [7, 8], [9, 3, 1]]


@pytest.mark.parametrize("mode", ["test", "valid"])
def test_candidates_are_the_held_out_item_and_100_distinct_items_the_user_never_touched(mode) -> None:
    task = prepare(TINY, n_items=150, mode=mode, seed=1)
    assert task.users.tolist() == [0, 1, 3]
    held_out = split(TINY, mode)[1]
    for candidates in (task.uniform, task.popular):
        assert candidates.shape == (3, 101)
        for row, user in enumerate(task.users):
            assert candidates[row, 0] == held_out[user]
            negatives = candidates[row, 1:]
            assert len(set(negatives.tolist())) == 100
            assert not set(negatives.tolist()) & set(TINY[user].tolist())
            assert negatives.min() >= 0 and negatives.max() < 150


def test_popularity_sampled_negatives_follow_popularity(synthetic_data: Dataset) -> None:
    task = prepare(synthetic_data.sequences, synthetic_data.n_items, seed=0, users=500)
    counts = np.bincount(np.concatenate(synthetic_data.sequences), minlength=synthetic_data.n_items)
    assert counts[task.popular[:, 1:]].mean() > 1.5 * counts[task.uniform[:, 1:]].mean()


def test_a_perfect_oracle_scores_one() -> None:
    task = prepare(TINY, n_items=150, seed=1)
    result = evaluate(Oracle(), task)
    assert (result.hr, result.ndcg, result.hr_popular, result.ndcg_popular) == (1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("scorer", [RandomScorer(), Constant()], ids=["random", "all-ties"])
def test_a_random_scorer_hits_about_10_in_101(synthetic_data: Dataset, scorer) -> None:
    task = prepare(synthetic_data.sequences, synthetic_data.n_items, seed=0)
    result = evaluate(scorer, task)
    assert result.users == 2000
    assert result.hr == pytest.approx(10 / 101, abs=0.025)
    assert result.hr_popular == pytest.approx(10 / 101, abs=0.025)
    assert result.ndcg < result.hr


def test_a_fixed_seed_gives_identical_candidates_and_results(synthetic_data: Dataset) -> None:
    first = prepare(synthetic_data.sequences, synthetic_data.n_items, seed=5, users=300)
    again = prepare(synthetic_data.sequences, synthetic_data.n_items, seed=5, users=300)
    other = prepare(synthetic_data.sequences, synthetic_data.n_items, seed=6, users=300)
    assert np.array_equal(first.users, again.users) and np.array_equal(first.uniform, again.uniform)
    assert np.array_equal(first.popular, again.popular)
    assert not np.array_equal(first.uniform, other.uniform)
    one, two = evaluate(Popularity(), first), evaluate(Popularity(), again)
    assert (one.hr, one.ndcg, one.hr_popular) == (two.hr, two.ndcg, two.hr_popular)


def test_ranks_and_metrics() -> None:
    scores = np.array([[5.0, 1, 2, 3], [0.0, 1, 2, 3], [2.0, 3, 1, 0]])
    assert ranks(scores, np.random.default_rng(0)).tolist() == [0, 3, 1]


def test_sampling_refuses_when_too_few_items_are_left() -> None:
    with pytest.raises(ValueError):
        sample_negatives(np.random.default_rng(0), 10, np.arange(5), 6)
