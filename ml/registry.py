"""Versioned model artifacts on the local filesystem, safe to share between processes.

Layout under the root (by default `<data dir>/models`; the caller passes it):

    versions/v0001/model.pkl, meta.json   one directory per saved model, never changed once there
    current.json                          {"version": "v0002", "promoted": ["v0001", "v0002"]}
    staging/                              versions being written (never listed)
    .lock                                 flock held while a version number is allocated or current.json changes

A version is written in full under staging/ and then renamed into versions/, and current.json is replaced by
rename, so a reader sees a whole artifact or none, and a crash leaves at most a staging directory behind. Object
storage is not implemented: `_LocalStore` is the only place that touches files, so a store with the same few
operations (put a directory of files once, list, read, compare-and-swap a small pointer) could replace it.

The model files are pickles: the registry trusts its root directory as it trusts the code.
"""
from __future__ import annotations

import fcntl
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.serving import ServingModel

VERSION_PATTERN = re.compile(r"v(\d{4,})")
MODEL_FILE = "model.pkl"
META_FILE = "meta.json"
CACHED_MODELS = 2  # the current model and the one it replaces, while a server swaps them


class NoPreviousVersionError(LookupError):
    """rollback() with no earlier promoted version to return to."""


class NoCurrentVersionError(LookupError):
    """load() of the current model before any version was promoted."""


@dataclass(frozen=True)
class TrainedModel:
    """What a training produces and the registry stores (ml.train.train)."""
    model: ServingModel
    metrics: dict[str, float]
    snapshot: dict[str, Any]


@dataclass(frozen=True)
class ModelVersion:
    version: str
    created_at: datetime
    metrics: dict[str, float]
    snapshot: dict[str, Any]
    current: bool


class _LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / "versions"
        self.staging = root / "staging"
        self.pointer = root / "current.json"
        for directory in (self.versions, self.staging):
            directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def names(self) -> list[str]:
        """Complete versions, oldest first."""
        found = []
        for entry in self.versions.iterdir():
            match = VERSION_PATTERN.fullmatch(entry.name)
            if match and (entry / META_FILE).is_file() and (entry / MODEL_FILE).is_file():
                found.append((int(match.group(1)), entry.name))
        return [name for _, name in sorted(found)]

    def last_number(self) -> int:
        """The highest version number in use, complete or not: a name is never reused."""
        numbers = (VERSION_PATTERN.fullmatch(entry.name) for entry in self.versions.iterdir())
        return max((int(match.group(1)) for match in numbers if match), default=0)

    def publish(self, name: str, files: dict[str, bytes]) -> None:
        staged = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.staging))
        try:
            for file, content in files.items():
                _write_synced(staged / file, content)
            os.rename(staged, self.versions / name)  # fails when the name exists: a version is written once
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        _sync_directory(self.versions)

    def read(self, name: str, file: str) -> bytes:
        return (self.versions / name / file).read_bytes()

    def read_pointer(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.pointer.read_text()))
        except FileNotFoundError:
            return None

    def write_pointer(self, pointer: dict[str, Any]) -> None:
        staged = self.staging / f"current-{os.getpid()}.json"
        _write_synced(staged, json.dumps(pointer).encode())
        os.replace(staged, self.pointer)
        _sync_directory(self.root)

    def pointer_stamp(self) -> tuple[int, int, float] | None:
        """(inode, mtime_ns, mtime) of current.json: a rename always brings a new inode, so an unchanged stamp
        means an unchanged pointer even when two promotions land within the clock's resolution."""
        try:
            stat = self.pointer.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_mtime


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.store = _LocalStore(Path(root))
        self._models: dict[str, ServingModel] = {}
        self._marker: tuple[tuple[int, int, float], str] | None = None

    def save(self, trained: TrainedModel) -> ModelVersion:
        """Store a new version (the next number); it is not promoted."""
        with self.store.locked():
            version = f"v{self.store.last_number() + 1:04d}"
            trained.model.version = version
            meta = {"version": version, "created_at": datetime.now(UTC).isoformat(),
                    "trained_at": trained.model.trained_at.isoformat(), "metrics": trained.metrics,
                    "snapshot": trained.snapshot}
            self.store.publish(version, {MODEL_FILE: pickle.dumps(trained.model, protocol=pickle.HIGHEST_PROTOCOL),
                                         META_FILE: json.dumps(meta, indent=2).encode()})
        return self._version(version, current=False)

    def versions(self) -> list[ModelVersion]:
        current = self._current_name()
        return [self._version(name, current=name == current) for name in self.store.names()]

    def current(self) -> ModelVersion | None:
        name = self._current_name()
        return self._version(name, current=True) if name else None

    def promote(self, version: str) -> ModelVersion:
        """Make `version` current; KeyError when there is no such version."""
        with self.store.locked():
            self._promote_locked(self._known(version))
        return self._version(version, current=True)

    def promote_if_better(self, version: str,
                          accept: Callable[[ModelVersion, ModelVersion], bool]) -> tuple[bool, ModelVersion | None]:
        """Promote `version` when there is no current version or `accept(candidate, current)`; the check and the
        promotion happen under one lock, so two retrains cannot both promote against a stale current version.
        Returns (promoted, the version that was current before)."""
        with self.store.locked():
            previous = self._current_name()
            candidate = self._version(self._known(version), current=False)
            before = self._version(previous, current=True) if previous else None
            if before is not None and not accept(candidate, before):
                return False, before
            self._promote_locked(version)
        return True, before

    def rollback(self) -> ModelVersion:
        """Return to the version promoted before the current one."""
        with self.store.locked():
            pointer = self.store.read_pointer() or {"promoted": []}
            promoted = list(pointer["promoted"])
            if len(promoted) < 2:
                raise NoPreviousVersionError("no earlier promoted version to roll back to")
            promoted.pop()
            self.store.write_pointer({"version": promoted[-1], "promoted": promoted})
        return self._version(promoted[-1], current=True)

    def load(self, version: str | None = None) -> ServingModel:
        """The model of `version` (None: the current one). Versions never change once saved, so a loaded model
        is kept and a second load of the same version costs nothing."""
        name = version if version is not None else self._current_name()
        if name is None:
            raise NoCurrentVersionError("no model version has been promoted yet")
        cached = self._models.get(name)
        if cached is not None:
            return cached
        model = pickle.loads(self.store.read(self._known(name), MODEL_FILE))
        if not isinstance(model, ServingModel):
            raise TypeError(f"{name}: {MODEL_FILE} holds a {type(model).__name__}, not a ServingModel")
        model.version = name
        if len(self._models) >= CACHED_MODELS:
            self._models.pop(next(iter(self._models)))
        self._models[name] = model
        return model

    def current_marker(self) -> tuple[str, float] | None:
        """(current version, mtime of the pointer), from one stat() when nothing changed: a server can call it
        per request and reload when another process promoted or rolled back."""
        stamp = self.store.pointer_stamp()
        if stamp is None:
            return None
        if self._marker is None or self._marker[0] != stamp:
            name = self._current_name()
            if name is None:
                return None
            self._marker = (stamp, name)
        return self._marker[1], stamp[2]

    def _current_name(self) -> str | None:
        pointer = self.store.read_pointer()
        return str(pointer["version"]) if pointer else None

    def _known(self, version: str) -> str:
        if not VERSION_PATTERN.fullmatch(version) or version not in self.store.names():
            raise KeyError(f"unknown model version {version!r}")
        return version

    def _promote_locked(self, version: str) -> None:
        pointer = self.store.read_pointer() or {"promoted": []}
        promoted = list(pointer["promoted"])
        if not promoted or promoted[-1] != version:
            promoted.append(version)
        self.store.write_pointer({"version": version, "promoted": promoted})

    def _version(self, name: str, *, current: bool) -> ModelVersion:
        meta = json.loads(self.store.read(name, META_FILE))
        return ModelVersion(version=name, created_at=datetime.fromisoformat(meta["created_at"]),
                            metrics=dict(meta["metrics"]), snapshot=dict(meta["snapshot"]), current=current)


def _write_synced(path: Path, content: bytes) -> None:
    with open(path, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
