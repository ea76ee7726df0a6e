"""`python -m ml eval [--data PATH] [--users N] [--seed S] [--mode test|valid]`: the offline evaluation table.

Ranks each recall under the SASRec protocol (ml.evaluation) on the Amazon Video Games sequences and prints
HR@10 / NDCG@10 with uniform negatives, HR@10 with popularity-sampled negatives and the fit time, beside the
figures the SASRec paper published, then the fit times and the served pipeline's scoring time for one user's whole
catalogue. The last line is the served pipeline's (ml.pipeline.SERVED): `nexuscart HR@10=<x> NDCG@10=<y>`.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from ml import commands as model_commands
from ml.datasets import DATA_ENV, DataMissingError, data_path, load_interactions
from ml.evaluation import Mode, Result, Task, evaluate, prepare
from ml.lightfm_recall import LightFMRecall
from ml.pipeline import PIPELINES, SERVED
from ml.ranker import Ranker
from ml.recalls import Blend, ItemKNN, Popularity, Recall, SessionKNN, default_components

# Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018, Table III (Video Games column).
PUBLISHED_SASREC = (0.741, 0.536)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("eval", help="rank every recall under the SASRec protocol and print the table")
    run.add_argument("--data", help=f"interactions.csv (default: ${DATA_ENV}, else {data_path()})")
    run.add_argument("--users", type=int, help="evaluate a seeded sample of N users (default: every eligible user)")
    run.add_argument("--seed", type=int, default=0, help="seed of the user sample and the negatives (default 0)")
    run.add_argument("--mode", choices=("test", "valid"), default="test",
                     help="test: refit on train + validation, score the last item (default); valid: score the "
                          "second-to-last")
    model_commands.add_parsers(commands)
    return parser


def _models(seed: int) -> list[tuple[str, Recall]]:
    """(label, model): plain popularity, each recall alone (the blend's, item and session kNN), LightFM alone, then
    every candidate pipeline."""
    recent, *others = default_components()
    assert isinstance(recent, Popularity)
    return [("popularity", Popularity()), (f"popularity (recency {recent.decay:g})", recent),
            *((model.name, model) for model in others), (ItemKNN.name, ItemKNN()), (SessionKNN.name, SessionKNN()),
            (LightFMRecall.name, LightFMRecall(seed=seed)),
            *((label, build(seed)) for label, build in PIPELINES.items())]


def _row(label: str, result: Result) -> str:
    return (f"{label:<28} {result.hr:>7.3f} {result.ndcg:>8.3f} {result.hr_popular:>14.3f} "
            f"{result.fit_seconds:>7.1f}")


def _describe(label: str, model: Recall) -> str | None:
    """What a pipeline learnt while fitting (blend weights, ranker training), or None."""
    if isinstance(model, Blend) and model.tuning is not None:
        weights = ", ".join(f"{name} {weight:g}" for name, weight in model.weights.items())
        return (f"{label} weights (tuned on the validation hold-out of {model.tuning.users:,} users, NDCG@10 "
                f"{model.tuning.ndcg:.3f}): {weights}")
    if isinstance(model, Ranker) and model.training is not None:
        training = model.training
        return (f"{label}: {training.rounds} trees on {training.users:,} users' last items ({training.rows:,} rows), "
                f"early-stopping NDCG@10 {training.early_stopping_ndcg:.3f}")
    return None


def _scoring_p50_ms(model: Recall, task: Task, users: int = 50) -> float:
    """Median time to score one user's history against every item, as serving does."""
    catalogue = np.arange(task.n_items)[None, :]
    timings = []
    for u in task.users[:users].tolist():
        started = time.perf_counter()
        model.score_batch([task.train[u]], catalogue)
        timings.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(timings))


def run_eval(data: str | None, users: int | None, seed: int, mode: Mode) -> int:
    started = time.perf_counter()
    try:
        dataset = load_interactions(data)
    except DataMissingError as error:
        print(f"ml eval: {error}", file=sys.stderr)
        return 2
    task = prepare(dataset.sequences, dataset.n_items, mode=mode, seed=seed, users=users)
    print(f"data: {data_path(data)}: {len(dataset.sequences):,} users, {dataset.n_items:,} items, "
          f"{dataset.n_interactions:,} interactions")
    print(f"protocol: SASRec leave-last-out, mode={mode}, {len(task.users):,} users evaluated, 100 negatives "
          f"per user, seed={seed}")
    print()
    header = f"{'model':<28} {'HR@10':>7} {'NDCG@10':>8} {'HR@10 pop-neg':>14} {'fit s':>7}"
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    served: tuple[Recall, Result] | None = None
    for label, model in _models(seed):
        result = evaluate(model, task)
        print(_row(label, result), flush=True)
        note = _describe(label, model)
        if note:
            notes.append(note)
        if label == SERVED:
            served = model, result
    hr, ndcg = PUBLISHED_SASREC
    print(f"{'SASRec (published, paper)':<28} {hr:>7.3f} {ndcg:>8.3f} {'-':>14} {'-':>7}")
    print()
    print(*notes, sep="\n")
    assert served is not None
    model, result = served
    print(f"served: {SERVED}, fit {result.fit_seconds:.1f} s, scoring one user's {task.n_items:,} items p50 "
          f"{_scoring_p50_ms(model, task):.1f} ms")
    print(f"total {time.perf_counter() - started:.0f} s")
    print(f"nexuscart HR@10={result.hr:.3f} NDCG@10={result.ndcg:.3f}")
    return 0


# Subcommand -> handler of its parsed arguments; a new subcommand adds a parser in `_parser` and a line here.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "eval": lambda args: run_eval(args.data, args.users, args.seed, args.mode),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handled = model_commands.run(args)
    return handled if handled is not None else COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
