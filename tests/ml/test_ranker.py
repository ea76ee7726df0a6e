"""The LightGBM ranker: it learns from a time split of its own training data and ranks at least as well as the best
recall it is given, with features that do not depend on which other candidates are scored."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from ml.datasets import Dataset
from ml.evaluation import Result, Task, evaluate, prepare
from ml.ranker import Ranker, token_matrix
from ml.recalls import Popularity, Recall

from .conftest import category_tokens, synthetic_categories


@pytest.fixture(scope="module")
def task(synthetic_data: Dataset) -> Task:
    return prepare(synthetic_data.sequences, synthetic_data.n_items, mode="test", seed=0)


class AlreadyFitted:
    """A recall the ranker has fitted (on the same training data), evaluated alone without fitting it again."""

    def __init__(self, recall: Recall) -> None:
        self.recall = recall

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> None:
        pass

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        return self.recall.score_batch(histories, candidates)


@pytest.fixture(scope="module")
def ranker_and_result(task: Task) -> tuple[Ranker, Result]:
    # 2,000 users are few: smaller trees than the defaults (sized for the 30,000 users of the real file).
    ranker = Ranker(leaves=7, min_leaf=200, seed=1)
    return ranker, evaluate(ranker, task)


def test_the_ranker_beats_or_matches_its_best_recall(task: Task, ranker_and_result: tuple[Ranker, Result]) -> None:
    ranker, ranked = ranker_and_result
    assert ranker.training is not None and ranker.training.rounds > 1
    alone = {component.name: evaluate(AlreadyFitted(component), task) for component in ranker.components}
    best = max(alone.values(), key=lambda result: result.ndcg)
    # 2,000 users: two rankings of equal quality differ by up to ~0.01 in NDCG@10.
    assert ranked.ndcg >= best.ndcg - 0.01
    assert ranked.hr >= best.hr - 0.015
    assert ranked.hr_popular > alone["popularity"].hr_popular + 0.3


def test_an_item_scores_the_same_whatever_the_other_candidates(task: Task,
                                                               ranker_and_result: tuple[Ranker, Result]) -> None:
    ranker, _ = ranker_and_result
    history = task.train[int(task.users[0])]
    everything = ranker.score(history, np.arange(task.n_items))
    few = np.array([3, 50, 400, 7])
    assert np.allclose(ranker.score(history, few), everything[few])


def test_an_unfitted_ranker_refuses_to_score() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Ranker().score(np.array([1, 2]), np.array([3, 4]))


def test_the_feature_match_follows_the_history_categories(synthetic_data: Dataset) -> None:
    categories = synthetic_categories()
    popularity = Popularity().fit(synthetic_data.sequences, synthetic_data.n_items)
    ranker = Ranker(components=[popularity])
    ranker.n_items = synthetic_data.n_items
    ranker.tokens = token_matrix(synthetic_data.n_items, category_tokens(categories))
    history = np.flatnonzero(categories == 3)[:4]
    same, other = np.flatnonzero(categories == 3)[4:8], np.flatnonzero(categories == 5)[:4]
    match = ranker.features([history], np.concatenate((same, other))[None, :])[0, :, -1]
    assert np.allclose(match[:4], 1.0) and np.allclose(match[4:], 0.0)
    no_features = Ranker(components=[popularity])
    no_features.n_items = synthetic_data.n_items
    assert np.all(no_features.features([history], same[None, :])[..., -1] == 0)
