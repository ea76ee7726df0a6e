"""The model registry: versions saved once and listed whole, promote and rollback seen by every process sharing
the directory, a half-written artifact never listed, a loaded model that answers like the one saved."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ml.datasets import REPO_ROOT
from ml.demo import demo_catalogue, simulate_shoppers
from ml.registry import ModelRegistry, NoCurrentVersionError, NoPreviousVersionError
from ml.train import TrainedModel, train

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    items = demo_catalogue(products=150, seed=5)
    return train(simulate_shoppers(items, shoppers=120, seed=5, now=NOW), items, seed=0)


def test_saved_versions_are_numbered_listed_with_their_metrics_and_not_current_until_promoted(tmp_path,
                                                                                             trained) -> None:
    registry = ModelRegistry(tmp_path)
    first, second = registry.save(trained), registry.save(trained)
    assert (first.version, second.version) == ("v0001", "v0002")
    assert registry.current() is None and registry.current_marker() is None
    listed = registry.versions()
    assert [v.version for v in listed] == ["v0001", "v0002"] and not any(v.current for v in listed)
    assert listed[0].metrics == trained.metrics and listed[0].snapshot == trained.snapshot
    with pytest.raises(NoCurrentVersionError):
        registry.load()


def test_promote_and_rollback_are_seen_by_another_registry_on_the_same_directory(tmp_path, trained) -> None:
    writer, reader = ModelRegistry(tmp_path), ModelRegistry(tmp_path)
    for _ in range(3):
        writer.save(trained)
    writer.promote("v0001")
    assert reader.current().version == "v0001"
    marker = reader.current_marker()
    assert marker is not None and marker[0] == "v0001"

    writer.promote("v0003")
    assert reader.current_marker()[0] == "v0003"
    assert [v.version for v in reader.versions() if v.current] == ["v0003"]
    assert reader.load().version == "v0003"

    assert reader.rollback().version == "v0001"
    assert writer.current().version == "v0001" and writer.current_marker()[0] == "v0001"
    with pytest.raises(NoPreviousVersionError):
        writer.rollback()
    assert reader.current().version == "v0001"


def test_promoting_an_unknown_version_raises_key_error_and_changes_nothing(tmp_path, trained) -> None:
    registry = ModelRegistry(tmp_path)
    registry.promote(registry.save(trained).version)
    for bad in ("v0099", "../v0001", "current"):
        with pytest.raises(KeyError):
            registry.promote(bad)
        with pytest.raises(KeyError):
            registry.load(bad)
    assert registry.current().version == "v0001"


def test_a_half_written_artifact_is_never_listed_nor_loaded(tmp_path, trained) -> None:
    registry = ModelRegistry(tmp_path)
    registry.promote(registry.save(trained).version)
    # A writer killed mid-save leaves its staging directory; a stray version directory without metadata is
    # no better.
    left = tmp_path / "staging" / "v0002-abc123"
    left.mkdir()
    (left / "model.pkl").write_bytes(b"\x80\x05 truncated")
    stray = tmp_path / "versions" / "v0002"
    stray.mkdir()
    (stray / "model.pkl").write_bytes(b"\x80\x05 truncated")
    (tmp_path / "versions" / "v0003.tmp").write_bytes(b"")

    assert [v.version for v in registry.versions()] == ["v0001"]
    with pytest.raises(KeyError):
        registry.load("v0002")
    assert registry.save(trained).version == "v0003"  # a number seen on disk is never reused
    assert [v.version for v in ModelRegistry(tmp_path).versions()] == ["v0001", "v0003"]


def test_a_loaded_model_answers_like_the_saved_one_and_is_loaded_once(tmp_path, trained) -> None:
    registry = ModelRegistry(tmp_path)
    saved = registry.save(trained)
    registry.promote(saved.version)
    loaded = ModelRegistry(tmp_path).load()
    assert loaded.version == saved.version == trained.model.version
    recent = trained.model.popular(exclude=(), first=3)
    assert loaded.recommend(recent, exclude=(), first=10) == trained.model.recommend(recent, exclude=(), first=10)
    assert loaded.similar(recent[0], exclude=(), first=5) == trained.model.similar(recent[0], exclude=(), first=5)
    assert registry.load() is registry.load(saved.version)


SAVE_REPEATEDLY = """
import pickle, sys
from pathlib import Path
from ml.registry import ModelRegistry
trained = pickle.loads(Path(sys.argv[2]).read_bytes())
registry = ModelRegistry(Path(sys.argv[1]))
print(" ".join(registry.save(trained).version for _ in range(int(sys.argv[3]))))
"""


def test_two_processes_saving_at_once_get_distinct_versions(tmp_path, trained) -> None:
    # Separate interpreters rather than fork: the model's native libraries (OpenMP) do not survive a fork.
    artifact = tmp_path / "trained.pkl"
    artifact.write_bytes(pickle.dumps(trained))
    root = tmp_path / "models"
    writers = [subprocess.Popen([sys.executable, "-c", SAVE_REPEATEDLY, str(root), str(artifact), "4"],
                                stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT) for _ in range(2)]
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]
    saved = sorted(version for output in outputs for version in output.split())
    assert saved == [f"v{n:04d}" for n in range(1, 9)]
    assert [v.version for v in ModelRegistry(root).versions()] == saved
    for version in saved:
        meta = json.loads((root / "versions" / version / "meta.json").read_text())
        assert meta["version"] == version
