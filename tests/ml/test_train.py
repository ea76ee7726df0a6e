"""Training from platform records: the demo data trains in seconds to a model that beats chance on the held-out
items, the snapshot describes the data, retraining promotes only a model at least as good, and the CLI drives it
all from a data directory."""
from __future__ import annotations

import argparse
import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from ml import commands
from ml.demo import demo_catalogue, simulate_shoppers
from ml.registry import ModelRegistry
from ml.train import Interaction, Item, TrainedModel, at_least, describe, read_export, retrain, train, write_export

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CHANCE_HR = 10 / 101


@pytest.fixture(scope="module")
def catalogue() -> list[Item]:
    return demo_catalogue(products=150, seed=1)


@pytest.fixture(scope="module")
def shoppers(catalogue) -> list[Interaction]:
    return simulate_shoppers(catalogue, shoppers=300, seed=1, now=NOW)


def shuffled_products(interactions: list[Interaction], seed: int = 0) -> list[Interaction]:
    """The same events with the products dealt out at random: no shopper's taste survives."""
    products = [i.product_id for i in interactions]
    random.Random(seed).shuffle(products)
    return [dataclasses.replace(i, product_id=p) for i, p in zip(interactions, products, strict=True)]


@pytest.fixture(scope="module")
def trained(catalogue, shoppers) -> TrainedModel:
    return train(shoppers, catalogue, seed=0)


@pytest.fixture(scope="module")
def trained_on_noise(catalogue, shoppers) -> TrainedModel:
    return train(shuffled_products(shoppers), catalogue, seed=0)


def test_the_demo_data_trains_to_a_model_that_beats_chance_on_held_out_items(catalogue, trained,
                                                                            trained_on_noise) -> None:
    metrics = trained.metrics
    assert metrics["negatives"] == 100 and metrics["evaluated_subjects"] > 250
    assert metrics["hr@10"] > 2.5 * CHANCE_HR and metrics["ndcg@10"] > 0.12
    # The metric measures taste, not the protocol: with the products dealt at random it falls.
    assert trained_on_noise.metrics["ndcg@10"] < metrics["ndcg@10"] - 0.05
    assert all(trained.model.knows(item.product_id) for item in catalogue)


def test_the_snapshot_counts_the_data_and_hashes_its_content_not_its_order(catalogue, shoppers, trained) -> None:
    snapshot = trained.snapshot
    assert snapshot == describe(shoppers, catalogue)
    assert snapshot["interactions"] == len(shoppers) and snapshot["items"] == len(catalogue)
    assert snapshot["subjects"] == len({i.subject for i in shoppers})
    assert sum(snapshot["kinds"].values()) == len(shoppers) and snapshot["kinds"]["PURCHASE"] > 0
    assert snapshot["first_at"] == min(i.occurred_at for i in shoppers).isoformat()
    assert snapshot["last_at"] == max(i.occurred_at for i in shoppers).isoformat()
    assert describe(list(reversed(shoppers)), catalogue)["content_hash"] == snapshot["content_hash"]
    changed = [*shoppers[:-1], dataclasses.replace(shoppers[-1], kind="WISHLIST")]
    assert describe(changed, catalogue)["content_hash"] != snapshot["content_hash"]


def test_a_product_interacted_with_but_missing_from_the_catalogue_is_still_known(catalogue, shoppers) -> None:
    extra = [Interaction(f"user:{n}", 9_999, "VIEW", NOW - timedelta(hours=n)) for n in range(3)]
    assert describe(shoppers + extra, catalogue)["items"] == len(catalogue) + 1
    assert all(item.product_id != 9_999 for item in catalogue)


@pytest.mark.parametrize("bad", [[], [Interaction("user:1", 1, "LIKE", NOW)]], ids=["empty", "unknown kind"])
def test_unusable_data_is_refused(catalogue, bad) -> None:
    with pytest.raises(ValueError):
        train(bad, catalogue)


def test_retrain_promotes_a_better_model_and_keeps_a_worse_one_saved_but_not_current(
        tmp_path, catalogue, shoppers, trained_on_noise) -> None:
    registry = ModelRegistry(tmp_path)
    registry.promote(registry.save(trained_on_noise).version)

    better = retrain(registry, shoppers, catalogue)
    assert better.promoted and better.version == "v0002"
    assert better.previous_metrics == trained_on_noise.metrics
    assert registry.current().version == "v0002"

    worse = retrain(registry, shuffled_products(shoppers, seed=1), catalogue)
    assert worse.version == "v0003" and not worse.promoted
    assert worse.metrics["ndcg@10"] < better.metrics["ndcg@10"]
    assert worse.previous_metrics == better.metrics
    assert registry.current().version == "v0002"
    assert [v.version for v in registry.versions()] == ["v0001", "v0002", "v0003"]  # saved all the same


def test_a_tie_is_at_least_as_good_and_ndcg_decides_before_hr(tmp_path, trained) -> None:
    registry = ModelRegistry(tmp_path)
    registry.promote(registry.save(trained).version)
    tie = registry.save(trained)
    assert registry.promote_if_better(tie.version, at_least)[0]
    lower_ndcg_higher_hr = dataclasses.replace(trained, metrics={**trained.metrics,
                                                                 "ndcg@10": trained.metrics["ndcg@10"] - 0.01,
                                                                 "hr@10": trained.metrics["hr@10"] + 0.1})
    promoted, current = registry.promote_if_better(registry.save(lower_ndcg_higher_hr).version, at_least)
    assert not promoted and current is not None and current.version == tie.version == "v0002"
    assert registry.current().version == "v0002"


def test_an_export_round_trips_to_the_same_training_data(tmp_path, catalogue, shoppers) -> None:
    path = tmp_path / "export.jsonl"
    write_export(path, catalogue, shoppers)
    items, interactions = read_export(path)
    assert items == catalogue and interactions == shoppers
    path.write_text(path.read_text() + '{"type": "interaction", "subject": "user:1"}\n')
    with pytest.raises(ValueError, match=r"export.jsonl:\d+"):
        read_export(path)


def run_cli(*argv: str) -> int | None:
    parser = argparse.ArgumentParser(prog="python -m ml")
    commands.add_parsers(parser.add_subparsers(dest="command", required=True))
    return commands.run(parser.parse_args(argv))


def test_the_cli_trains_lists_promotes_and_rolls_back(tmp_path, catalogue, shoppers, capsys) -> None:
    data = str(tmp_path / "models")
    assert run_cli("train", "--model-dir", data, "--demo", "--shoppers", "150") == 0
    assert "v0001: promoted" in capsys.readouterr().out

    export = tmp_path / "export.jsonl"
    write_export(export, catalogue, shuffled_products(shoppers))
    assert run_cli("train", "--model-dir", data, "--input", str(export)) == 0
    assert "v0002: saved, not promoted" in capsys.readouterr().out

    assert run_cli("models", "--model-dir", data) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row[:7] for row in rows] == ["* v0001", "  v0002"]

    assert run_cli("promote", "v0002", "--model-dir", data) == 0
    assert ModelRegistry(tmp_path / "models").current().version == "v0002"
    assert run_cli("rollback", "--model-dir", data) == 0
    assert ModelRegistry(tmp_path / "models").current().version == "v0001"
    capsys.readouterr()

    assert run_cli("promote", "v0042", "--model-dir", data) == 2
    assert "unknown model version 'v0042'" in capsys.readouterr().err
    assert run_cli("rollback", "--model-dir", data) == 2
    assert ModelRegistry(tmp_path / "models").current().version == "v0001"


def test_commands_that_are_not_the_models_are_left_to_the_caller() -> None:
    assert commands.run(argparse.Namespace(command="eval")) is None
