"""A/B experiments of the recommendations, the rules: definitions (ADMIN), the assignment of shoppers to variants
on the hot path, and the results. No GraphQL (schema.py) and no SQL (repository.py) here.

The hot path, for recommendedForYou (service.recommended_for_shopper: one call per request, with the request's
session):

    assignment = await experiments.assign_variant(session, subject=subject)
    if assignment is not None:
        ...  # serve assignment.model_version / assignment.parameters (both None: the default recommender)

`subject` is the shopper as interactions name them: "user:<id>" signed in, "session:<id>" for a guest. It returns
the shopper's variant of the experiment that applies (the most recent RUNNING one), or None when none runs. The
variant is a pure function of sha256(key, subject) and the weights, which never change after creation: the same
shopper gets the same variant in every process and on every request (sticky) with nothing stored to look up.

What it costs: the running experiment is kept in process and read again every RUNNING_REFRESH_SECONDS (a stop or
a new experiment reaches other processes within that; this process at once). The first exposure of a subject
is recorded in the request's transaction: INSERT ... ON CONFLICT DO NOTHING on (experiment, subject), and only
when the row is new, `experiment.exposed` through the outbox, so a rolled-back request records neither. The
last EXPOSED_REMEMBERED (experiment, subject) pairs this process recorded are remembered, so a returning shopper
costs no statement at all. Redis is not used: a SET NX marker set before the insert would lose the exposure of a
request that rolls back; set after the commit, it would only spare a shopper's first visit to another process (a
no-op insert, ~1 ms) for a Redis round trip on every first exposure.

Measured (tests' embedded Postgres, in-process ASGI, signed-in shopper, 1,000 requests each, on 2 cores shared
at load average 9-14), recommendedForYou as a whole, p50 / p99: no experiment 1.8 / 7.4 ms; first exposure
(insert, outbox event, commit) 5.4 / 12.6 ms; a repeat this process remembers 1.7 / 7.7 ms; a repeat it does not
(no-op insert) 2.7 / 9.0 ms. choose_variant alone: 4 µs. Committing the first exposure with synchronous_commit
off gained ~2 ms at p50 and nothing measurable at p99, so the caller's transaction keeps its durability.

Results count distinct exposed subjects per variant, and as conversions those with a PURCHASE after their first
exposure (a guest's session linked to an account converts through the account's purchases too); the statistics
are experiment_stats.py's.
"""
from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hashlib
import math
import re
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.ids import next_id
from kernel.outbox import add_event
from kernel.uow import after_commit
from subgraphs.recommendations import experiment_stats, repository
from subgraphs.recommendations.errors import ExperimentKeyTaken, ExperimentNotFound, InvalidRecommendationInput
from subgraphs.recommendations.events import ExperimentExposed
from subgraphs.recommendations.models import SCHEMA, ExperimentRecord, VariantSpec

ADMIN = "ADMIN"
MIN_VARIANTS = 2
MAX_VARIANTS = 10
KEY_MAX = 64
NAME_MAX = 40
MODEL_VERSION_MAX = 64
PARAMETERS_MAX_BYTES = 4096
RUNNING_REFRESH_SECONDS = 5.0
EXPOSED_REMEMBERED = 100_000
_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---- records ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class VariantIn:
    """A variant as an admin gave it, not yet checked (check_variants)."""
    name: str
    weight: float
    model_version: str | None = None
    parameters: object = None


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    experiment_key: str
    variant: str
    model_version: str | None
    parameters: dict[str, Any] | None


@dataclasses.dataclass(frozen=True, slots=True)
class VariantCounts:
    """What the exposed subjects of one variant did after their first exposure."""
    name: str
    weight: float
    exposures: int
    conversions: int
    clickers: int
    cart_adders: int


@dataclasses.dataclass(frozen=True, slots=True)
class VariantResultRecord:
    counts: VariantCounts
    rate: float | None  # conversions / exposures
    click_through_rate: float | None
    add_to_cart_rate: float | None
    comparison: experiment_stats.Comparison | None  # None for the control, or when the counts cannot tell


@dataclasses.dataclass(frozen=True, slots=True)
class ResultsRecord:
    experiment: ExperimentRecord
    variants: list[VariantResultRecord]
    sample_ratio_p_value: float | None
    sample_ratio_mismatch: bool


# ---- input --------------------------------------------------------------------------------------------------

def _check_identifier(value: str, *, field: str, max_length: int) -> str:
    cleaned = value.strip()
    if not 1 <= len(cleaned) <= max_length or not _KEY_PATTERN.fullmatch(cleaned):
        raise InvalidRecommendationInput(f"'{field}' must be 1..{max_length} characters: letters, digits, '.', "
                                         "'-' or '_', starting with a letter or digit", field=field)
    return cleaned


def _check_model_version(value: str | None, *, field: str) -> str | None:
    if value is None:
        return None
    cleaned = value.strip()
    if (not 1 <= len(cleaned) <= MODEL_VERSION_MAX
            or any(unicodedata.category(c) in ("Cc", "Cf") for c in cleaned)):
        raise InvalidRecommendationInput(f"'{field}' must be 1..{MODEL_VERSION_MAX} printable characters",
                                         field=field)
    return cleaned


def _check_parameters(value: object, *, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRecommendationInput(f"'{field}' must be a JSON object", field=field)
    if len(orjson.dumps(value)) > PARAMETERS_MAX_BYTES:
        raise InvalidRecommendationInput(f"'{field}' must be at most {PARAMETERS_MAX_BYTES} bytes of JSON",
                                         field=field)
    return value


def check_variants(variants: Sequence[VariantIn]) -> list[VariantSpec]:
    """The variants as stored: 2..10, names unique, weights finite and >= 0 with a positive sum; BAD_USER_INPUT
    naming the offending field otherwise."""
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise InvalidRecommendationInput(
            f"An experiment has {MIN_VARIANTS}..{MAX_VARIANTS} variants (the first is the control)", field="variants")
    checked: list[VariantSpec] = []
    seen: set[str] = set()
    for index, variant in enumerate(variants):
        prefix = f"variants[{index}]"
        name = _check_identifier(variant.name, field=f"{prefix}.name", max_length=NAME_MAX)
        if name in seen:
            raise InvalidRecommendationInput(f"Variant names must be unique: '{name}' is given twice",
                                             field=f"{prefix}.name")
        seen.add(name)
        if not math.isfinite(variant.weight) or variant.weight < 0:
            raise InvalidRecommendationInput("A weight is a number >= 0", field=f"{prefix}.weight")
        checked.append(VariantSpec(
            name=name, weight=float(variant.weight),
            model_version=_check_model_version(variant.model_version, field=f"{prefix}.modelVersion"),
            parameters=_check_parameters(variant.parameters, field=f"{prefix}.parameters")))
    if sum(v.weight for v in checked) <= 0:
        raise InvalidRecommendationInput("At least one variant needs a weight above 0", field="variants")
    return checked


# ---- assignment ---------------------------------------------------------------------------------------------

def bucket(key: str, subject: str) -> float:
    """The subject's uniform position in [0, 1) for this experiment: independent across experiments (the key is
    hashed with the subject), the same in every process."""
    digest = hashlib.sha256(f"{key}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_variant(experiment: ExperimentRecord, subject: str) -> VariantSpec:
    """The variant whose share of [0, 1), in the order given, holds the subject's bucket."""
    total = sum(v.weight for v in experiment.variants)
    bounds: list[float] = []
    running = 0.0
    for variant in experiment.variants:
        running += variant.weight / total
        bounds.append(running)
    position = bisect.bisect_right(bounds, bucket(experiment.key, subject))
    # Rounding can leave the last bound a hair under 1: the top of the range belongs to the last weighted one.
    if position >= len(bounds):
        position = max(i for i, v in enumerate(experiment.variants) if v.weight > 0)
    return experiment.variants[position]


class RunningExperiment:
    """This process's view of the experiment recommendedForYou applies, read again every `refresh_seconds`,
    and of the subjects whose exposure it has recorded."""

    def __init__(self, refresh_seconds: float = RUNNING_REFRESH_SECONDS,
                 remembered: int = EXPOSED_REMEMBERED) -> None:
        self._refresh_seconds = refresh_seconds
        self._remembered = remembered
        self._experiment: ExperimentRecord | None = None
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self._exposed: OrderedDict[tuple[int, str], None] = OrderedDict()

    def invalidate(self) -> None:
        self._read_at = None

    async def current(self, session: AsyncSession) -> ExperimentRecord | None:
        if self._fresh():
            return self._experiment
        async with self._lock:  # one reader refreshes; the requests that queued behind it reuse its answer
            if not self._fresh():
                self._experiment = await repository.latest_running_experiment(session)
                self._read_at = time.monotonic()
        return self._experiment

    def _fresh(self) -> bool:
        return self._read_at is not None and time.monotonic() - self._read_at < self._refresh_seconds

    def known_exposed(self, experiment_id: int, subject: str) -> bool:
        marker = (experiment_id, subject)
        if marker in self._exposed:
            self._exposed.move_to_end(marker)
            return True
        return False

    def remember_exposed(self, experiment_id: int, subject: str) -> None:
        self._exposed[(experiment_id, subject)] = None
        if len(self._exposed) > self._remembered:
            self._exposed.popitem(last=False)


# The process-wide one (the hot path's default); tests pass their own.
RUNNING = RunningExperiment()


async def assign_variant(session: AsyncSession, *, subject: str,
                         running: RunningExperiment = RUNNING) -> Assignment | None:
    """The subject's variant of the running experiment (see the module docstring), its first exposure recorded
    in `session`'s transaction; None when no experiment runs."""
    experiment = await running.current(session)
    if experiment is None:
        return None
    variant = choose_variant(experiment, subject)
    if not running.known_exposed(experiment.id, subject):
        exposed_at = await repository.insert_exposure(session, experiment_id=experiment.id, subject=subject,
                                                      variant=variant.name, at=utc_now())
        if exposed_at is not None:
            await add_event(session, SCHEMA, ExperimentExposed(
                experiment_key=experiment.key, variant=variant.name, subject=subject,
                model_version=variant.model_version, exposed_at=exposed_at), key=subject)
        experiment_id = experiment.id

        async def remember() -> None:
            running.remember_exposed(experiment_id, subject)
        # Only once committed: a rolled-back request must leave the exposure to the next one.
        after_commit(session, remember)
    return Assignment(experiment_key=experiment.key, variant=variant.name, model_version=variant.model_version,
                      parameters=variant.parameters)


# ---- definitions and results (ADMIN) ------------------------------------------------------------------------

async def new_experiment(session: AsyncSession, *, caller: Principal, key: str,
                         variants: Sequence[VariantIn], running: RunningExperiment = RUNNING) -> ExperimentRecord:
    """A RUNNING experiment, from now on the one recommendedForYou applies. CONFLICT when the key exists."""
    caller.require_role(ADMIN)
    checked_key = _check_identifier(key, field="key", max_length=KEY_MAX)
    checked = check_variants(variants)
    experiment = await repository.insert_experiment(session, experiment_id=next_id(), key=checked_key,
                                                    specs=checked, created_by=caller.user_id, at=utc_now())
    if experiment is None:
        raise ExperimentKeyTaken(checked_key)

    async def refresh() -> None:
        running.invalidate()
    after_commit(session, refresh)
    return experiment


async def end_experiment(session: AsyncSession, *, caller: Principal, key: str,
                          running: RunningExperiment = RUNNING) -> ExperimentRecord:
    """STOPPED: nobody is assigned or exposed any more (its results stay). Stopping it again changes nothing."""
    caller.require_role(ADMIN)
    experiment = await repository.stop_experiment(session, key, utc_now())
    if experiment is None:
        raise ExperimentNotFound(key)

    async def refresh() -> None:
        running.invalidate()
    after_commit(session, refresh)
    return experiment


async def all_experiments(session: AsyncSession, *, caller: Principal) -> list[ExperimentRecord]:
    caller.require_role(ADMIN)
    return await repository.list_experiments(session)


async def results_of(session: AsyncSession, *, caller: Principal, key: str) -> ResultsRecord:
    """Each variant's counts and its comparison with the control (the first variant), and the split's health."""
    caller.require_role(ADMIN)
    experiment = await repository.get_experiment(session, key)
    if experiment is None:
        raise ExperimentNotFound(key)
    found = await repository.variant_counts(session, experiment.id)
    counts = [VariantCounts(v.name, v.weight, *found.get(v.name, (0, 0, 0, 0))) for v in experiment.variants]
    control = counts[0]
    results = [VariantResultRecord(
        counts=c, rate=experiment_stats.rate(c.conversions, c.exposures),
        click_through_rate=experiment_stats.rate(c.clickers, c.exposures),
        add_to_cart_rate=experiment_stats.rate(c.cart_adders, c.exposures),
        comparison=None if index == 0 else experiment_stats.compare(control.conversions, control.exposures,
                                                                    c.conversions, c.exposures))
        for index, c in enumerate(counts)]
    exposures = [c.exposures for c in counts]
    weights = [c.weight for c in counts]
    srm_p_value = experiment_stats.sample_ratio_p_value(exposures, weights)
    return ResultsRecord(experiment=experiment, variants=results, sample_ratio_p_value=srm_p_value,
                         sample_ratio_mismatch=experiment_stats.sample_ratio_mismatch(exposures, weights))
