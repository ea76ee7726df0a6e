"""Training from platform data: interaction records in, a `ServingModel` with its offline metrics out.

`train` knows nothing of SQL or Kafka: the recommendations subgraph reads its rows and passes `Item` and
`Interaction` records (or `python -m ml train` reads them from a JSON-lines export). A subject's sequence is the
distinct products it touched, in the order it first touched them (a view, then an add-to-cart of the same
product is one step). The offline metrics are those of `make eval` (ml.evaluation): the last item of every subject
with >= 3 items is held out and ranked among 100 items the subject never touched, by a pipeline fitted on the
rest; the served model is then refitted on everything.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from ml.evaluation import MIN_INTERACTIONS, evaluate, prepare
from ml.pipeline import served_pipeline
from ml.recalls import ItemFeatures, Recall
from ml.registry import ModelRegistry, ModelVersion, TrainedModel
from ml.serving import NO_CATEGORY, ItemTables, ServingModel

KINDS = ("VIEW", "CLICK", "ADD_TO_CART", "WISHLIST", "PURCHASE")
# How much one subject's strongest interaction with a product says about the product's appeal (popularity).
KIND_WEIGHT = {"VIEW": 1.0, "CLICK": 1.0, "WISHLIST": 2.0, "ADD_TO_CART": 3.0, "PURCHASE": 5.0}
BASKET_KINDS = frozenset({"ADD_TO_CART", "PURCHASE"})
# similar() wants substitutes: products looked at by the same shopper. What is bought together is a complement
# (an accessory), which bought_together() answers.
BROWSE_KINDS = frozenset({"VIEW", "CLICK", "WISHLIST"})
# A subject's cart and purchase events closer than this belong to one basket (one shopping trip).
BASKET_GAP = timedelta(hours=6)
PRICE_BANDS = 5
# Feature tokens and how much each kind of token counts in similar(): a shared category or brand says more
# than a shared tag or price band.
TOKEN_WEIGHT = {"category": 1.0, "brand": 1.0, "tag": 0.5, "price": 0.5}
N_NEGATIVES = 100
K = 10


@dataclass(frozen=True)
class Item:
    """A product as the recommendations domain knows it."""
    product_id: int
    category_id: int | None
    brand: str | None
    price: float | None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Interaction:
    """`subject` is "user:<id>" or "session:<id>"; `kind` one of KINDS."""
    subject: str
    product_id: int
    kind: str
    occurred_at: datetime


@dataclass(frozen=True)
class RetrainOutcome:
    version: str
    promoted: bool
    metrics: dict[str, float]
    previous_metrics: dict[str, float] | None = field(default=None)


def train(interactions: Sequence[Interaction], items: Sequence[Item], *, seed: int = 0) -> TrainedModel:
    """Fit the served pipeline and the item tables on `interactions`; the model knows every product of `items`
    and every product interacted with (one without an `Item` has no features)."""
    _check(interactions)
    catalogue = _catalogue(interactions, items)
    index_of = {item.product_id: index for index, item in enumerate(catalogue)}
    ordered = sorted(interactions, key=lambda i: (i.subject, i.occurred_at))
    by_subject: dict[str, list[Interaction]] = defaultdict(list)
    for interaction in ordered:
        by_subject[interaction.subject].append(interaction)
    sequences = [np.fromiter(dict.fromkeys(index_of[i.product_id] for i in events), dtype=np.int64)
                 for events in by_subject.values()]
    tokens = feature_tokens(catalogue)
    metrics = _offline_metrics(sequences, len(catalogue), tokens, seed)
    pipeline = _fit(served_pipeline(seed), sequences, len(catalogue), tokens)
    tables = ItemTables(
        product_ids=np.array([item.product_id for item in catalogue], dtype=np.int64),
        category=np.array([NO_CATEGORY if item.category_id is None else item.category_id for item in catalogue],
                          dtype=np.int64),
        popularity=_popularity(by_subject.values(), index_of, len(catalogue)),
        covisits=_cosine(_incidence(_browsed(by_subject.values(), index_of), len(catalogue))),
        baskets=_cosine(_incidence(list(_baskets(by_subject.values(), index_of)), len(catalogue))),
        features=_feature_matrix(tokens),
    )
    model = ServingModel(pipeline, tables, trained_at=datetime.now(UTC))
    return TrainedModel(model=model, metrics=metrics, snapshot=describe(interactions, items))


def retrain(registry: ModelRegistry, interactions: Sequence[Interaction], items: Sequence[Item], *,
            seed: int = 0) -> RetrainOutcome:
    """Train, save a new version and promote it when its offline metrics are at least the current version's
    (NDCG@10, then HR@10), or when there is no current version. Saved either way, so it can be promoted by hand."""
    trained = train(interactions, items, seed=seed)
    saved = registry.save(trained)
    promoted, previous = registry.promote_if_better(saved.version, at_least)
    return RetrainOutcome(version=saved.version, promoted=promoted, metrics=trained.metrics,
                          previous_metrics=previous.metrics if previous is not None else None)


def at_least(candidate: ModelVersion, current: ModelVersion) -> bool:
    """NDCG@10 decides; HR@10 only when NDCG@10 ties."""
    def key(metrics: dict[str, float]) -> tuple[float, float]:
        return metrics.get("ndcg@10", 0.0), metrics.get("hr@10", 0.0)
    return key(candidate.metrics) >= key(current.metrics)


def feature_tokens(items: Sequence[Item]) -> list[list[str]]:
    """Each item's tokens for the pipeline: `category:<id>`, `brand:<name>`, `price:band<k>` (quintile of the
    catalogue's prices), `tag:<t>`."""
    prices = np.array([item.price for item in items if item.price is not None], dtype=np.float64)
    edges = np.quantile(prices, np.linspace(0, 1, PRICE_BANDS + 1)[1:-1]) if len(prices) else np.empty(0)
    tokens = []
    for item in items:
        own = [] if item.category_id is None else [f"category:{item.category_id}"]
        if item.brand:
            own.append(f"brand:{item.brand.strip().lower()}")
        if item.price is not None:
            own.append(f"price:band{int(np.searchsorted(edges, item.price, side='right'))}")
        own += [f"tag:{tag.strip().lower()}" for tag in item.tags if tag.strip()]
        tokens.append(own)
    return tokens


class _WithFeatures:
    """The evaluation protocol calls fit(train, n_items); this passes the catalogue's tokens along."""

    def __init__(self, pipeline: Recall, tokens: ItemFeatures) -> None:
        self.pipeline = pipeline
        self.tokens = tokens

    def fit(self, train: Sequence[np.ndarray], n_items: int) -> Self:
        _fit(self.pipeline, train, n_items, self.tokens)
        return self

    def score_batch(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        return self.pipeline.score_batch(histories, candidates)


def _fit(pipeline: Recall, train: Sequence[np.ndarray], n_items: int, tokens: ItemFeatures) -> Recall:
    # A recall that predates item features (the blend of recalls on histories alone) has no such parameter.
    if "item_features" in inspect.signature(pipeline.fit).parameters:
        return pipeline.fit(train, n_items, item_features=tokens)
    return pipeline.fit(train, n_items)


def _offline_metrics(sequences: list[np.ndarray], n_items: int, tokens: ItemFeatures,
                     seed: int) -> dict[str, float]:
    eligible = [len(s) for s in sequences if len(s) >= MIN_INTERACTIONS]
    # A catalogue of 60 products cannot give a subject who touched 20 of them 100 negatives: use what there is,
    # and record it, since HR@10 among 40 negatives is not comparable with HR@10 among 100.
    negatives = min(N_NEGATIVES, n_items - max(eligible, default=n_items))
    if not eligible or negatives < 1:
        return {"hr@10": 0.0, "ndcg@10": 0.0, "evaluated_subjects": 0.0, "negatives": float(max(negatives, 0))}
    task = prepare(sequences, n_items, mode="test", seed=seed, n_negatives=negatives)
    result = evaluate(_WithFeatures(served_pipeline(seed), tokens), task, k=K)
    return {"hr@10": round(result.hr, 6), "ndcg@10": round(result.ndcg, 6),
            "evaluated_subjects": float(result.users), "negatives": float(negatives)}


def _check(interactions: Sequence[Interaction]) -> None:
    if not interactions:
        raise ValueError("no interactions to train on")
    unknown = {i.kind for i in interactions} - set(KINDS)
    if unknown:
        raise ValueError(f"unknown interaction kinds {sorted(unknown)}; expected one of {', '.join(KINDS)}")


def _catalogue(interactions: Sequence[Interaction], items: Sequence[Item]) -> list[Item]:
    by_id = {item.product_id: item for item in items}
    for interaction in interactions:
        by_id.setdefault(interaction.product_id, Item(interaction.product_id, None, None, None))
    return [by_id[product] for product in sorted(by_id)]


def _popularity(subjects: Iterable[list[Interaction]], index_of: dict[int, int], n_items: int) -> np.ndarray:
    """log(1 + sum over subjects of their strongest interaction's weight), scaled to 0..1."""
    counts = np.zeros(n_items)
    for events in subjects:
        strongest: dict[int, float] = {}
        for event in events:
            strongest[event.product_id] = max(strongest.get(event.product_id, 0.0), KIND_WEIGHT[event.kind])
        for product, weight in strongest.items():
            counts[index_of[product]] += weight
    scaled = np.log1p(counts)
    return scaled / scaled.max() if scaled.max() > 0 else scaled


def _browsed(subjects: Iterable[list[Interaction]], index_of: dict[int, int]) -> list[np.ndarray]:
    return [np.fromiter({index_of[e.product_id] for e in events if e.kind in BROWSE_KINDS}, dtype=np.int64)
            for events in subjects]


def _baskets(subjects: Iterable[list[Interaction]], index_of: dict[int, int]) -> Iterable[np.ndarray]:
    for events in subjects:
        basket: list[int] = []
        last: datetime | None = None
        for event in events:
            if event.kind not in BASKET_KINDS:
                continue
            if last is not None and event.occurred_at - last > BASKET_GAP and basket:
                yield np.array(basket, dtype=np.int64)
                basket = []
            basket.append(index_of[event.product_id])
            last = event.occurred_at
        if basket:
            yield np.array(basket, dtype=np.int64)


def _incidence(groups: Sequence[np.ndarray], n_items: int) -> sp.csr_array:
    """Binary (groups x items)."""
    rows = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    cols = np.concatenate(list(groups)) if len(groups) else np.empty(0, dtype=np.int64)
    matrix = sp.coo_array((np.ones(len(cols)), (rows, cols)), shape=(len(groups), n_items)).tocsr()
    matrix.data[:] = 1.0
    return matrix


def _cosine(incidence: sp.csr_array) -> sp.csr_array:
    """Item-item cosine of the columns of a binary matrix, diagonal 0."""
    counts = sp.csr_array(incidence.T @ incidence)
    counts.setdiag(0)
    counts.eliminate_zeros()
    degree = np.asarray(incidence.sum(axis=0)).ravel()
    scale = sp.diags_array(1.0 / np.sqrt(np.maximum(degree, 1.0)))
    return sp.csr_array(scale @ counts @ scale)


def _feature_matrix(tokens: Sequence[Sequence[str]]) -> sp.csr_array:
    vocabulary: dict[str, int] = {}
    rows, cols, values = [], [], []
    for row, own in enumerate(tokens):
        for token in dict.fromkeys(own):
            rows.append(row)
            cols.append(vocabulary.setdefault(token, len(vocabulary)))
            values.append(TOKEN_WEIGHT.get(token.split(":", 1)[0], 0.5))
    matrix = sp.coo_array((values, (rows, cols)), shape=(len(tokens), len(vocabulary))).tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.csr_array(sp.diags_array(1.0 / np.maximum(norms, 1e-12)) @ matrix)


def describe(interactions: Sequence[Interaction], items: Sequence[Item]) -> dict[str, Any]:
    """The snapshot saved with a model: counts, time range and a hash of the content (not of its order)."""
    _check(interactions)
    catalogue = _catalogue(interactions, items)
    digest = hashlib.sha256()
    for line in sorted(f"{i.subject}\t{i.product_id}\t{i.kind}\t{i.occurred_at.isoformat()}" for i in interactions):
        digest.update(line.encode() + b"\n")
    for item in catalogue:
        digest.update(json.dumps(asdict(item), sort_keys=True).encode() + b"\n")
    times = [i.occurred_at for i in interactions]
    return {
        "subjects": len({i.subject for i in interactions}),
        "items": len(catalogue),
        "interactions": len(interactions),
        "kinds": dict(sorted(Counter(i.kind for i in interactions).items())),
        "first_at": min(times).isoformat(),
        "last_at": max(times).isoformat(),
        "content_hash": f"sha256:{digest.hexdigest()}",
    }


def write_export(path: Path, items: Iterable[Item], interactions: Iterable[Interaction]) -> None:
    """The JSON-lines export `python -m ml train` reads: one {"type": "item", ...} or {"type": "interaction", ...}
    object per line."""
    with path.open("w") as out:
        for item in items:
            out.write(json.dumps({"type": "item", **asdict(item)}) + "\n")
        for interaction in interactions:
            record = {"type": "interaction", **asdict(interaction),
                      "occurred_at": interaction.occurred_at.isoformat()}
            out.write(json.dumps(record) + "\n")


def read_export(path: Path) -> tuple[list[Item], list[Interaction]]:
    items: list[Item] = []
    interactions: list[Interaction] = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                kind = record.pop("type")
                if kind == "item":
                    items.append(Item(int(record["product_id"]), _optional_int(record.get("category_id")),
                                      record.get("brand"), _optional_float(record.get("price")),
                                      tuple(record.get("tags") or ())))
                elif kind == "interaction":
                    interactions.append(Interaction(str(record["subject"]), int(record["product_id"]),
                                                    str(record["kind"]),
                                                    datetime.fromisoformat(record["occurred_at"])))
                else:
                    raise ValueError(f"unknown record type {kind!r}")
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return items, interactions


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
