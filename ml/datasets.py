"""Interaction data as per-user item sequences.

Items are re-indexed to 0..n_items-1 (`Dataset.item_ids` keeps the original ids); each user's sequence is in time
order. `load_interactions` reads the evaluation CSV (`user_id,item_id,seq`); `synthetic` generates sequences with
popularity skew, per-user category affinities and "sequel" transitions, for tests that must run without the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "NEXUSCART_EVAL_DATA"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "amazon-video-games-sasrec" / "interactions.csv"
HEADER = "user_id,item_id,seq"


class DataMissingError(FileNotFoundError):
    """The evaluation file is not where NEXUSCART_EVAL_DATA (or the default) says."""


@dataclass(frozen=True)
class Dataset:
    sequences: list[np.ndarray]  # one int64 array per user: item indices in time order
    n_items: int
    user_ids: np.ndarray  # original user id of each sequence
    item_ids: np.ndarray  # original item id of each item index

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))


def data_path(explicit: str | Path | None = None) -> Path:
    """The evaluation file: an explicit path, else NEXUSCART_EVAL_DATA, else the shared default."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(DATA_ENV)
    return Path(from_env) if from_env else DEFAULT_DATA.resolve()


def load_interactions(path: str | Path | None = None, max_users: int | None = None) -> Dataset:
    """Read `user_id,item_id,seq` rows into per-user sequences ordered by `seq`; `max_users` keeps the users with
    the smallest ids only (a reproducible slice)."""
    file = data_path(path)
    if not file.is_file():
        raise DataMissingError(
            f"evaluation data not found at {file}; set {DATA_ENV} to the interactions.csv of the Amazon Video Games "
            f"SASRec sequences (columns {HEADER})")
    with file.open() as handle:
        header = handle.readline().strip()
    if header != HEADER:
        raise ValueError(f"{file}: expected the header {HEADER!r}, found {header!r}")
    rows = np.loadtxt(file, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    users, items, seq = rows[:, 0], rows[:, 1], rows[:, 2]
    if max_users is not None:
        keep = np.isin(users, np.unique(users)[:max_users])
        users, items, seq = users[keep], items[keep], seq[keep]
    order = np.lexsort((seq, users))
    users, items = users[order], items[order]
    item_ids, item_index = np.unique(items, return_inverse=True)
    starts = np.flatnonzero(np.diff(users)) + 1
    sequences = [s.astype(np.int64) for s in np.split(item_index, starts)]
    user_ids = users[np.concatenate(([0], starts))] if len(users) else users
    return Dataset(sequences=sequences, n_items=len(item_ids), user_ids=user_ids, item_ids=item_ids)


def synthetic(n_users: int = 2000, n_items: int = 600, n_categories: int = 12, seed: int = 0,
              min_len: int = 3, max_len: int = 20) -> Dataset:
    """Sequences with structure each recall can find: Zipf-like item popularity, two favourite categories per
    user (co-occurrence) and a fixed "sequel" per item that often comes next (transitions)."""
    rng = np.random.default_rng(seed)
    category = rng.integers(0, n_categories, size=n_items)
    popularity = 1.0 / (1.0 + rng.permutation(n_items)) ** 0.9
    sequel = rng.permutation(n_items)  # item i is often followed by sequel[i]
    global_cdf = np.cumsum(popularity) / popularity.sum()
    members = [np.flatnonzero(category == c) for c in range(n_categories)]
    category_cdfs = [np.cumsum(popularity[m]) / popularity[m].sum() for m in members]

    def from_category(c: int) -> int:
        if not len(members[c]):
            return min(int(np.searchsorted(global_cdf, rng.random())), n_items - 1)
        position = min(int(np.searchsorted(category_cdfs[c], rng.random())), len(members[c]) - 1)
        return int(members[c][position])

    sequences = []
    for _ in range(n_users):
        favourites = rng.choice(n_categories, size=2, replace=False)
        length = int(rng.integers(min_len, max_len + 1))
        seq: list[int] = []
        while len(seq) < length:
            draw = rng.random()
            if seq and draw < 0.45:
                item = int(sequel[seq[-1]])
            elif draw < 0.85:
                item = from_category(int(rng.choice(favourites)))
            else:
                item = min(int(np.searchsorted(global_cdf, rng.random())), n_items - 1)
            if item not in seq:
                seq.append(item)
        sequences.append(np.asarray(seq, dtype=np.int64))
    return Dataset(sequences=sequences, n_items=n_items, user_ids=np.arange(1, n_users + 1),
                   item_ids=np.arange(n_items))
