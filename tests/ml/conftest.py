"""Fixtures of the offline ml/ tests: a synthetic dataset (always available) and the real file when present."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.datasets import Dataset, data_path, synthetic


@pytest.fixture(scope="session")
def synthetic_data() -> Dataset:
    return synthetic(n_users=2000, n_items=600, seed=7)


@pytest.fixture(scope="session")
def real_data_file() -> Path:
    path = data_path()
    if not path.is_file():
        pytest.skip(f"evaluation data not found at {path} (set NEXUSCART_EVAL_DATA)")
    return path


def write_csv(path: Path, sequences: list[np.ndarray]) -> Path:
    lines = ["user_id,item_id,seq"]
    for user, seq in enumerate(sequences, start=1):
        lines += [f"{user},{item + 1},{position}" for position, item in enumerate(seq, start=1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def synthetic_categories(n_items: int = 600, n_categories: int = 12, seed: int = 7) -> np.ndarray:
    """The category of each item of `synthetic(n_items=..., seed=...)`: its first draw from the seeded generator.
    (ml.datasets does not expose it; the tests below check that the categories explain the data.)"""
    return np.random.default_rng(seed).integers(0, n_categories, size=n_items)


def category_tokens(categories: np.ndarray) -> list[list[str]]:
    return [[f"category:{c}"] for c in categories.tolist()]
