"""The pipeline that is served: what `make eval` reports on its last line and what the recommendations subgraph
loads from the model registry.

`served_pipeline()` returns an unfitted `Recall` whose `fit(train, n_items, item_features=None)` may also take each
item's feature tokens (e.g. `category:<id>`, `brand:<name>`, `price:band3`, `tag:<t>`; the Amazon Games log has
none), and whose `score_batch(histories, candidates)` ranks candidates for each history. Serving scores every
item (`candidates = arange(n_items)`), so a history that changes (a new view) changes the ranking at once.
"""
from __future__ import annotations

from collections.abc import Sequence

from ml.recalls import Blend, Recall

ItemFeatures = Sequence[Sequence[str]]


def served_pipeline(seed: int = 0) -> Recall:
    return Blend(seed=seed)
