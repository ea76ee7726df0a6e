"""LightFM as an identity-free hybrid recall: it learns, it follows the latest views, it scores new products."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from ml.datasets import Dataset
from ml.evaluation import Task, evaluate, prepare
from ml.lightfm_recall import LightFMRecall
from ml.recalls import Popularity

from .conftest import category_tokens, synthetic_categories


@pytest.fixture(scope="module")
def task(synthetic_data: Dataset) -> Task:
    return prepare(synthetic_data.sequences, synthetic_data.n_items, mode="test", seed=0)


@pytest.fixture(scope="module")
def fitted(task: Task) -> LightFMRecall:
    return LightFMRecall(seed=1).fit(task.train, task.n_items)


def test_lightfm_beats_popularity(task: Task) -> None:
    lightfm, popularity = evaluate(LightFMRecall(seed=1), task), evaluate(Popularity(), task)
    assert lightfm.hr > popularity.hr + 0.1
    assert lightfm.ndcg > popularity.ndcg + 0.08
    assert lightfm.hr_popular > popularity.hr_popular + 0.1  # not popularity in disguise


def test_the_synthetic_categories_explain_the_histories(synthetic_data: Dataset) -> None:
    categories = synthetic_categories()
    # Two favourite categories out of 12: a user's items concentrate far above the 1-in-12 of chance.
    shares = [np.bincount(categories[s], minlength=12).max() / len(s) for s in synthetic_data.sequences]
    assert float(np.mean(shares)) > 0.35


def test_a_new_view_moves_its_usual_successors_up_without_retraining(task: Task, fitted: LightFMRecall) -> None:
    successors: dict[int, list[int]] = {}
    for seq in task.train:
        for before, after in zip(seq[:-1].tolist(), seq[1:].tolist(), strict=True):
            successors.setdefault(before, []).append(after)
    # Items with a clear usual successor (the synthetic "sequel", seen at least 5 times).
    followed = {item: int(np.bincount(after).argmax()) for item, after in successors.items()
                if np.bincount(after).max() >= 5}
    catalogue = np.arange(task.n_items)
    ranks_before, ranks_after = [], []
    for u in task.users[:100].tolist():
        history = task.train[u]
        viewed = next(item for item in followed if item not in set(history.tolist()))
        before = fitted.score(history, catalogue)
        after = fitted.score(np.append(history, viewed), catalogue)
        assert not np.allclose(before, after)
        ranks_before.append(int((before > before[followed[viewed]]).sum()))
        ranks_after.append(int((after > after[followed[viewed]]).sum()))
    moved_up = np.array(ranks_after) < np.array(ranks_before)
    assert moved_up.mean() > 0.7, moved_up.mean()
    assert np.median(ranks_after) < np.median(ranks_before) / 2


def test_only_the_last_items_describe_the_user(fitted: LightFMRecall) -> None:
    catalogue = np.arange(fitted.n_items)
    recent = np.array([5, 6, 7])
    assert np.allclose(fitted.score(np.array([1, 2, 3, *recent]), catalogue), fitted.score(recent, catalogue),
                       atol=1e-5)


def test_a_new_item_with_only_features_is_scored_by_its_category(synthetic_data: Dataset) -> None:
    categories = synthetic_categories()
    rng = np.random.default_rng(0)
    cold = rng.choice(synthetic_data.n_items, size=60, replace=False)
    train = [s[~np.isin(s, cold)] for s in synthetic_data.sequences]
    train = [s for s in train if len(s)]
    recall = LightFMRecall(seed=1).fit(train, synthetic_data.n_items, item_features=category_tokens(categories))
    favourite_first = []
    for history in train[:300]:
        favourite = np.bincount(categories[history], minlength=12).argmax()
        scores = recall.score(history, cold)
        assert np.ptp(scores) > 0  # new items get different, non-degenerate scores
        in_favourite = categories[cold] == favourite
        if in_favourite.any():
            favourite_first.append(scores[in_favourite].mean() > scores[~in_favourite].mean())
    assert len(favourite_first) > 250 and np.mean(favourite_first) > 0.8


def test_the_fitted_recall_pickles_and_scores_the_same(task: Task, fitted: LightFMRecall) -> None:
    again = pickle.loads(pickle.dumps(fitted))
    histories = [task.train[u] for u in task.users[:20]]
    candidates = task.uniform[:20]
    assert np.array_equal(again.score_batch(histories, candidates), fitted.score_batch(histories, candidates))
