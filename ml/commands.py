"""The model commands of `python -m ml`: train, models, promote, rollback.

Models live in the registry directory the platform uses (ml.registry): --model-dir, else RECOMMENDATIONS_MODEL_DIR,
else `.data/models/recommendations` (where `make run` keeps them). `train` reads a JSON-lines export
(ml.train.write_export) or, with --demo, simulates shoppers over a demo catalogue, and promotes the new version
only when its offline metrics are at least the current version's. The platform's own retrain (from the
recommendations store) is `nexuscart retrain-recommendations` and the worker's periodic job.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ml.demo import demo_catalogue, simulate_shoppers
from ml.registry import ModelRegistry, ModelVersion
from ml.train import read_export, retrain

COMMANDS = ("train", "models", "promote", "rollback")
DEFAULT_MODEL_DIR = Path(".data") / "models" / "recommendations"


def model_dir(explicit: Path | None) -> Path:
    return explicit or Path(os.environ.get("RECOMMENDATIONS_MODEL_DIR") or DEFAULT_MODEL_DIR)


def add_parsers(subparsers: Any) -> None:
    """Add the model commands to `python -m ml`'s subparsers (argparse's _SubParsersAction)."""
    def with_model_dir(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("--model-dir", type=Path, help="the model registry (default: $RECOMMENDATIONS_MODEL_DIR, "
                                                           f"else {DEFAULT_MODEL_DIR})")
        return parser

    train = with_model_dir("train", "train a model version and promote it when it is at least as good")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--input", type=Path, help="JSON-lines export of items and interactions")
    source.add_argument("--demo", action="store_true", help="train on simulated shoppers over a demo catalogue")
    train.add_argument("--shoppers", type=int, default=300, help="simulated shoppers with --demo (default 300)")
    train.add_argument("--seed", type=int, default=0, help="seed of the training and the demo (default 0)")
    with_model_dir("models", "list the model versions with their metrics; * marks the current one")
    with_model_dir("promote", "make a saved version current").add_argument("version", help="e.g. v0003")
    with_model_dir("rollback", "return to the version promoted before the current one")


def run(args: argparse.Namespace) -> int | None:
    """Run a model command; None when `args.command` is not one of them."""
    if args.command not in COMMANDS:
        return None
    registry = ModelRegistry(model_dir(args.model_dir))
    try:
        if args.command == "train":
            return _train(registry, args)
        if args.command == "models":
            return _list(registry)
        changed = registry.promote(args.version) if args.command == "promote" else registry.rollback()
    except (LookupError, ValueError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"ml {args.command}: {message}", file=sys.stderr)
        return 2
    print(f"current model: {changed.version} ({_metrics(changed.metrics)})")
    return 0


def _train(registry: ModelRegistry, args: argparse.Namespace) -> int:
    if args.demo:
        items = demo_catalogue(seed=args.seed)
        interactions = simulate_shoppers(items, shoppers=args.shoppers, seed=args.seed)
        print(f"demo: {args.shoppers} simulated shoppers over {len(items)} products")
    elif args.input:
        items, interactions = read_export(args.input)
    else:
        print("ml train: give --input EXPORT.jsonl or --demo (the platform retrains from its own store with "
              "`nexuscart retrain-recommendations`)", file=sys.stderr)
        return 2
    outcome = retrain(registry, interactions, items, seed=args.seed)
    verdict = "promoted" if outcome.promoted else "saved, not promoted (worse than the current version)"
    print(f"{outcome.version}: {verdict}; {_metrics(outcome.metrics)}")
    if outcome.previous_metrics is not None:
        print(f"previous current version: {_metrics(outcome.previous_metrics)}")
    return 0


def _list(registry: ModelRegistry) -> int:
    versions = registry.versions()
    if not versions:
        print(f"no model versions in {registry.store.root}")
    for version in versions:
        print(_row(version))
    return 0


def _row(version: ModelVersion) -> str:
    marker = "*" if version.current else " "
    snapshot = version.snapshot
    return (f"{marker} {version.version}  {version.created_at:%Y-%m-%d %H:%M:%S}  {_metrics(version.metrics)}  "
            f"{snapshot.get('subjects', 0)} subjects, {snapshot.get('items', 0)} items, "
            f"{snapshot.get('interactions', 0)} interactions")


def _metrics(metrics: dict[str, float]) -> str:
    return (f"HR@10={metrics.get('hr@10', 0.0):.3f} NDCG@10={metrics.get('ndcg@10', 0.0):.3f} "
            f"({int(metrics.get('evaluated_subjects', 0))} subjects, {int(metrics.get('negatives', 0))} negatives)")
