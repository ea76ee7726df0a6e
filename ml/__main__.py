"""`python -m ml eval [--data PATH] [--users N] [--seed S] [--mode test|valid]`: the offline evaluation table.

Ranks each recall under the SASRec protocol (ml.evaluation) on the Amazon Video Games sequences and prints
HR@10 / NDCG@10 with uniform negatives, HR@10 with popularity-sampled negatives and the fit time, beside the
figures the SASRec paper published. The last line is the blend's (the pipeline that would be served):
`nexuscart HR@10=<x> NDCG@10=<y>`.
"""
from __future__ import annotations

import argparse
import sys
import time

from ml.datasets import DATA_ENV, DataMissingError, data_path, load_interactions
from ml.evaluation import Mode, evaluate, prepare
from ml.recalls import Blend, Popularity, Recall, default_components

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
    return parser


def _models(seed: int) -> list[tuple[str, Recall]]:
    """(label, model): plain popularity, then the blend's own recalls alone, then the blend."""
    recent, *others = default_components()
    assert isinstance(recent, Popularity)
    return [("popularity", Popularity()), (f"popularity (recency {recent.decay:g})", recent),
            *((model.name, model) for model in others), ("blend", Blend(seed=seed))]


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
    blend_result = None
    blend: Blend | None = None
    for label, model in _models(seed):
        result = evaluate(model, task)
        print(f"{label:<28} {result.hr:>7.3f} {result.ndcg:>8.3f} {result.hr_popular:>14.3f} "
              f"{result.fit_seconds:>7.1f}", flush=True)
        if isinstance(model, Blend):
            blend, blend_result = model, result
    hr, ndcg = PUBLISHED_SASREC
    print(f"{'SASRec (published, paper)':<28} {hr:>7.3f} {ndcg:>8.3f} {'-':>14} {'-':>7}")
    print()
    assert blend is not None and blend_result is not None and blend.tuning is not None
    weights = ", ".join(f"{name} {weight:g}" for name, weight in blend.weights.items())
    print(f"blend weights (tuned on the validation hold-out of {blend.tuning.users:,} users, NDCG@10 "
          f"{blend.tuning.ndcg:.3f}): {weights}")
    print(f"total {time.perf_counter() - started:.0f} s")
    print(f"nexuscart HR@10={blend_result.hr:.3f} NDCG@10={blend_result.ndcg:.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "eval":
        return run_eval(args.data, args.users, args.seed, args.mode)
    return 2  # pragma: no cover - argparse refuses unknown commands


if __name__ == "__main__":
    sys.exit(main())
