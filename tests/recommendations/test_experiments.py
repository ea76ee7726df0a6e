"""A/B experiments against the real stack: definitions through GraphQL (ADMIN only, bad input refused with nothing
stored), the assignment and its recorded first exposure (with experiment.exposed in the outbox), and results read
from real exposures and interactions."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.db import create_session_factory
from kernel.settings import Settings
from kernel.uow import unit_of_work
from subgraphs.recommendations import experiment_stats, experiments
from subgraphs.recommendations.app import build_app
from subgraphs.recommendations.experiments import RunningExperiment, assign_variant, choose_variant
from subgraphs.recommendations.models import ExperimentRecord, ExperimentStatus, VariantSpec
from subgraphs.recommendations.serving import Recommender
from tests.conftest import GraphQLClient, served_in_process
from tests.event_contracts import as_consumed

CREATE = """mutation($input: CreateExperimentInput!) { createExperiment(input: $input) {
  id key status createdAt stoppedAt variants { name weight modelVersion parameters } } }"""
STOP = "mutation($key: String!) { stopExperiment(key: $key) { key status stoppedAt } }"
FOR_YOU = "query($first: Int) { recommendedForYou(first: $first) { id } }"
LIST = "{ experiments { key status variants { name weight } } }"
RESULTS = """query($key: String!) { experimentResults(key: $key) { key status sampleRatioMismatch sampleRatioPValue
  variants { name exposures conversions rate lift ciLow ciHigh pValue weight clickThroughs clickThroughRate
             cartAdds addToCartRate } } }"""


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """The recommendations subgraph in process, without a model (popularity answers recommendedForYou)."""
    app = build_app(settings, recommender=Recommender(None, refresh_seconds=3600))
    async with served_in_process(app, "http://recommendations", timeout=30) as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture(autouse=True)
def forget_the_running_experiment() -> Iterator[None]:
    """The process-wide view outlives a test's tables: the next test (here or in another module) reads afresh."""
    yield
    experiments.RUNNING.invalidate()


@pytest.fixture
def admin(token_for: Callable[..., str]) -> str:
    return token_for("ADMIN")


def experiment_input(key: str = "recs-v2", **overrides: Any) -> dict[str, Any]:
    return {"key": key, "variants": [
        {"name": "control", "weight": 50, "modelVersion": "blend-1"},
        {"name": "treatment", "weight": 50, "modelVersion": "blend-2", "parameters": {"diversity": 0.3}}],
        **overrides}


async def stored_experiments(db_admin: asyncpg.Pool) -> int:
    return await db_admin.fetchval("SELECT count(*) FROM recommendations.experiments")


async def exposed_events(db_admin: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await db_admin.fetch("SELECT key, envelope FROM recommendations.outbox WHERE topic = "
                                "'experiment.exposed' ORDER BY id")
    return [{"key": r["key"], **as_consumed("experiment.exposed", orjson.loads(r["envelope"])["payload"])}
            for r in rows]


def record(key: str, *weights: float) -> ExperimentRecord:
    return ExperimentRecord(id=1, key=key, status=ExperimentStatus.RUNNING,
                            variants=tuple(VariantSpec(name=f"v{i}", weight=w) for i, w in enumerate(weights)),
                            created_by=None, created_at=datetime.now(UTC), stopped_at=None)


# ---- definitions ----------------------------------------------------------------------------------------------

async def test_an_admin_creates_lists_and_stops_an_experiment(api: GraphQLClient, admin: str) -> None:
    created = (await api.ok(CREATE, {"input": experiment_input()}, admin))["createExperiment"]
    assert created["key"] == "recs-v2" and created["status"] == "RUNNING" and created["stoppedAt"] is None
    assert created["variants"] == [
        {"name": "control", "weight": 50.0, "modelVersion": "blend-1", "parameters": None},
        {"name": "treatment", "weight": 50.0, "modelVersion": "blend-2", "parameters": {"diversity": 0.3}}]

    assert (await api.ok(LIST, token=admin))["experiments"] == [
        {"key": "recs-v2", "status": "RUNNING", "variants": [{"name": "control", "weight": 50.0},
                                                             {"name": "treatment", "weight": 50.0}]}]
    stopped = (await api.ok(STOP, {"key": "recs-v2"}, admin))["stopExperiment"]
    assert stopped["status"] == "STOPPED" and stopped["stoppedAt"] is not None
    again = (await api.ok(STOP, {"key": "recs-v2"}, admin))["stopExperiment"]
    assert again == stopped  # stopping twice changes nothing


async def test_a_taken_key_is_a_conflict_and_stores_nothing(api: GraphQLClient, admin: str,
                                                            db_admin: asyncpg.Pool) -> None:
    await api.ok(CREATE, {"input": experiment_input()}, admin)
    other = experiment_input(variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 3}])
    assert await api.error_code(CREATE, {"input": other}, admin) == "CONFLICT"
    assert await stored_experiments(db_admin) == 1
    listed = (await api.ok(LIST, token=admin))["experiments"]
    assert [v["name"] for v in listed[0]["variants"]] == ["control", "treatment"]  # the first one is untouched


@pytest.mark.parametrize(("overrides", "field"), [
    ({"variants": [{"name": "only", "weight": 1}]}, "variants"),
    ({"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}, "variants[1].name"),
    ({"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": -0.5}]}, "variants[1].weight"),
    ({"variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}, "variants"),
    ({"variants": [{"name": "a", "weight": 1}, {"name": "b c", "weight": 1}]}, "variants[1].name"),
    ({"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "parameters": [1, 2]}]},
     "variants[1].parameters"),
    ({"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "parameters": {"x": "y" * 5000}}]},
     "variants[1].parameters"),
    ({"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "modelVersion": " "}]},
     "variants[1].modelVersion"),
    ({"key": ""}, "key"),
    ({"key": "has space"}, "key"),
    ({"key": "k" * 65}, "key"),
])
async def test_bad_input_is_refused_naming_the_field_and_stores_nothing(
        api: GraphQLClient, admin: str, db_admin: asyncpg.Pool, overrides: dict[str, Any], field: str) -> None:
    body = await api.raw(CREATE, {"input": experiment_input(**overrides)}, admin)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert "recommendations." not in error["message"]  # no SQL or internals in what the client reads
    assert await stored_experiments(db_admin) == 0


async def test_only_admins_see_or_change_experiments(api: GraphQLClient, admin: str, token_for: Callable[..., str],
                                                     db_admin: asyncpg.Pool) -> None:
    customer = token_for("CUSTOMER")
    for token, code in ((None, "UNAUTHENTICATED"), (customer, "FORBIDDEN")):
        assert await api.error_code(CREATE, {"input": experiment_input()}, token) == code
    assert await stored_experiments(db_admin) == 0
    await api.ok(CREATE, {"input": experiment_input()}, admin)
    for token, code in ((None, "UNAUTHENTICATED"), (customer, "FORBIDDEN")):
        assert await api.error_code(LIST, token=token) == code
        assert await api.error_code(RESULTS, {"key": "recs-v2"}, token) == code
        assert await api.error_code(STOP, {"key": "recs-v2"}, token) == code
    assert (await api.ok(LIST, token=admin))["experiments"][0]["status"] == "RUNNING"


async def test_an_unknown_key_is_not_found(api: GraphQLClient, admin: str) -> None:
    assert await api.error_code(RESULTS, {"key": "nope"}, admin) == "NOT_FOUND"
    assert await api.error_code(STOP, {"key": "nope"}, admin) == "NOT_FOUND"


# ---- assignment -----------------------------------------------------------------------------------------------

def test_assignment_follows_the_weights() -> None:
    experiment = record("ranker-90-10", 9, 1)
    shares = Counter(choose_variant(experiment, f"user:{i}").name for i in range(20_000))
    # 90% expected, sd of the share 0.21%: 1 point off is a broken split, not chance.
    assert abs(shares["v0"] / 20_000 - 0.90) < 0.01
    assert shares["v0"] + shares["v1"] == 20_000


def test_assignment_is_deterministic_and_independent_between_experiments() -> None:
    first, second = record("exp-a", 1, 1), record("exp-b", 1, 1)
    subjects = [f"session:{uuid.UUID(int=i)}" for i in range(4000)]
    assert [choose_variant(first, s) for s in subjects] == [choose_variant(first, s) for s in subjects]
    # Another key reshuffles: knowing a shopper's arm in one experiment says nothing of the next (about half agree).
    agree = sum(choose_variant(first, s).name == choose_variant(second, s).name for s in subjects)
    assert 0.45 < agree / len(subjects) < 0.55


def test_a_variant_of_weight_zero_gets_nobody() -> None:
    experiment = record("holdout-off", 1, 0, 1)
    assert {choose_variant(experiment, f"user:{i}").name for i in range(5000)} == {"v0", "v2"}


async def test_the_first_exposure_is_recorded_once_with_its_event(api: GraphQLClient, admin: str,
                                                                  service_engine: AsyncEngine,
                                                                  db_admin: asyncpg.Pool) -> None:
    sessions = create_session_factory(service_engine)
    async with unit_of_work(sessions) as session:
        assert await assign_variant(session, subject="user:1", running=RunningExperiment()) is None
    await api.ok(CREATE, {"input": experiment_input()}, admin)

    subjects = [f"user:{i}" for i in range(40)]
    first: dict[str, str] = {}
    process = RunningExperiment()
    for subject in subjects:
        async with unit_of_work(sessions) as session:
            assignment = await assign_variant(session, subject=subject, running=process)
        assert assignment is not None and assignment.experiment_key == "recs-v2"
        first[subject] = assignment.variant
        expected_model = "blend-1" if assignment.variant == "control" else "blend-2"
        assert assignment.model_version == expected_model
    # Sticky: the same answers from this process again and from another process that remembers nothing.
    for running in (process, RunningExperiment()):
        for subject in subjects:
            async with unit_of_work(sessions) as session:
                assignment = await assign_variant(session, subject=subject, running=running)
            assert assignment is not None and assignment.variant == first[subject]

    stored = await db_admin.fetch("SELECT subject, variant FROM recommendations.experiment_exposures")
    assert {r["subject"]: r["variant"] for r in stored} == first
    events = await exposed_events(db_admin)
    assert sorted((e["subject"], e["variant"], e["experiment_key"]) for e in events) == sorted(
        (s, v, "recs-v2") for s, v in first.items())
    assert all(e["key"] == e["subject"] for e in events)


async def test_a_shopper_asking_for_recommendations_is_exposed_once(api: GraphQLClient, admin: str,
                                                                    token_for: Callable[..., str],
                                                                    db_admin: asyncpg.Pool) -> None:
    """Through recommendedForYou itself: the signed-in shopper's first request records the exposure and its event,
    later ones nothing more."""
    await api.ok(CREATE, {"input": experiment_input("served")}, admin)
    shopper = token_for("CUSTOMER", user_id=4242)
    for _ in range(3):
        await api.ok(FOR_YOU, {"first": 5}, shopper)
    stored = await db_admin.fetch("SELECT subject, variant FROM recommendations.experiment_exposures")
    variant = choose_variant(record("served", 50, 50), "user:4242").name
    names = {"v0": "control", "v1": "treatment"}
    assert [(r["subject"], r["variant"]) for r in stored] == [("user:4242", names[variant])]
    assert [(e["subject"], e["experiment_key"]) for e in await exposed_events(db_admin)] == [("user:4242", "served")]


async def test_a_rolled_back_request_leaves_the_exposure_to_the_next(api: GraphQLClient, admin: str,
                                                                     service_engine: AsyncEngine,
                                                                     db_admin: asyncpg.Pool) -> None:
    await api.ok(CREATE, {"input": experiment_input()}, admin)
    sessions = create_session_factory(service_engine)
    running = RunningExperiment()

    async def failing_request() -> None:
        async with unit_of_work(sessions) as session:
            await assign_variant(session, subject="session:abc", running=running)
            raise RuntimeError("the resolver failed after assigning")

    with pytest.raises(RuntimeError):
        await failing_request()
    assert await db_admin.fetchval("SELECT count(*) FROM recommendations.experiment_exposures") == 0
    async with unit_of_work(sessions) as session:
        await assign_variant(session, subject="session:abc", running=running)
    assert await db_admin.fetchval("SELECT count(*) FROM recommendations.experiment_exposures") == 1
    assert len(await exposed_events(db_admin)) == 1


async def test_the_newest_running_experiment_applies_and_a_stopped_one_none(
        api: GraphQLClient, admin: str, service_engine: AsyncEngine) -> None:
    sessions = create_session_factory(service_engine)
    await api.ok(CREATE, {"input": experiment_input("older")}, admin)
    await api.ok(CREATE, {"input": experiment_input("newer")}, admin)

    async def applied() -> str | None:
        async with unit_of_work(sessions) as session:
            assignment = await assign_variant(session, subject="user:7", running=RunningExperiment())
        return assignment.experiment_key if assignment else None

    assert await applied() == "newer"
    await api.ok(STOP, {"key": "newer"}, admin)
    assert await applied() == "older"
    await api.ok(STOP, {"key": "older"}, admin)
    assert await applied() is None


async def test_this_process_sees_its_own_changes_at_once(api: GraphQLClient, admin: str,
                                                         service_engine: AsyncEngine) -> None:
    """The process-wide view is refreshed every few seconds, but a change made here is seen on the next call."""
    sessions = create_session_factory(service_engine)
    await api.ok(CREATE, {"input": experiment_input("first")}, admin)

    async def applied() -> str | None:
        async with unit_of_work(sessions) as session:
            assignment = await assign_variant(session, subject="user:9")
        return assignment.experiment_key if assignment else None

    assert await applied() == "first"
    await api.ok(STOP, {"key": "first"}, admin)
    assert await applied() is None


# ---- results --------------------------------------------------------------------------------------------------

async def insert_interactions(db_admin: asyncpg.Pool, rows: list[tuple[str, str, datetime, str | None]]) -> None:
    """(subject, kind, occurred_at, source) rows of the interactions table, as the domain's worker stores them."""
    await db_admin.executemany(
        "INSERT INTO recommendations.interactions (id, event_id, subject, user_id, session_id, product_id, kind, "
        "source, occurred_at) VALUES ($1, $2, $3, $4, $5, 42, $6, $7, $8)",
        [(index + 1, uuid.uuid4(), subject,
          int(subject[5:]) if subject.startswith("user:") else None,
          subject[8:] if subject.startswith("session:") else None, kind, source, at)
         for index, (subject, kind, at, source) in enumerate(rows)])


async def expose(db_admin: asyncpg.Pool, key: str, assignments: dict[str, str], at: datetime) -> None:
    await db_admin.executemany(
        "INSERT INTO recommendations.experiment_exposures (experiment_id, subject, variant, exposed_at) "
        "SELECT id, $2, $3, $4 FROM recommendations.experiments WHERE key = $1",
        [(key, subject, variant, at) for subject, variant in assignments.items()])


async def test_results_count_what_exposed_shoppers_did_afterwards(api: GraphQLClient, admin: str,
                                                                  service_engine: AsyncEngine,
                                                                  db_admin: asyncpg.Pool) -> None:
    await api.ok(CREATE, {"input": experiment_input()}, admin)
    sessions = create_session_factory(service_engine)
    running = RunningExperiment()
    by_variant: dict[str, list[str]] = {"control": [], "treatment": []}
    for i in range(60):
        subject = f"user:{i + 1}" if i % 3 else f"session:s{i}"
        async with unit_of_work(sessions) as session:
            assignment = await assign_variant(session, subject=subject, running=running)
        assert assignment is not None
        by_variant[assignment.variant].append(subject)
    control, treatment = by_variant["control"], by_variant["treatment"]
    control_users = [s for s in control if s.startswith("user:")]
    treatment_users = [s for s in treatment if s.startswith("user:")]
    guest = next(s for s in treatment if s.startswith("session:"))
    exposed_at = {r["subject"]: r["exposed_at"] for r in await db_admin.fetch(
        "SELECT subject, exposed_at FROM recommendations.experiment_exposures")}
    later = max(exposed_at.values()) + timedelta(minutes=5)
    before = min(exposed_at.values()) - timedelta(days=1)
    # The guest signs in as user 9999 and buys as that user: the exposure of the session converts.
    await db_admin.execute("INSERT INTO recommendations.session_links (session_id, user_id) VALUES ($1, 9999)",
                           guest[8:])
    await insert_interactions(db_admin, [
        (control_users[0], "PURCHASE", later, None),
        (control_users[0], "PURCHASE", later + timedelta(minutes=1), None),  # a second purchase: one converter
        (control_users[1], "PURCHASE", before, None),  # bought before being exposed: not a conversion
        (control_users[2], "CLICK", later, "recommendations"),
        (control_users[3], "CLICK", later, "search"),  # a click elsewhere is no click-through
        (treatment_users[0], "PURCHASE", later, None),
        (treatment_users[1], "PURCHASE", later, None),
        (treatment_users[1], "ADD_TO_CART", later, None),
        ("user:9999", "PURCHASE", later, None),
    ])

    results = (await api.ok(RESULTS, {"key": "recs-v2"}, admin))["experimentResults"]
    first, second = results["variants"]
    assert (first["name"], first["exposures"], first["conversions"]) == ("control", len(control), 1)
    assert (second["name"], second["exposures"], second["conversions"]) == ("treatment", len(treatment), 3)
    assert (first["clickThroughs"], first["cartAdds"], second["clickThroughs"], second["cartAdds"]) == (1, 0, 0, 1)
    assert first["rate"] == pytest.approx(1 / len(control))
    assert second["rate"] == pytest.approx(3 / len(treatment))
    assert first["lift"] is None and first["pValue"] is None  # the control is the reference
    assert second["lift"] == pytest.approx((3 / len(treatment)) / (1 / len(control)) - 1)
    assert second["pValue"] == pytest.approx(
        experiment_stats.two_proportion_p_value(1, len(control), 3, len(treatment)))
    assert second["ciLow"] < second["lift"] < second["ciHigh"]
    assert results["sampleRatioMismatch"] is False


async def test_a_known_lift_in_the_tables_is_detected(api: GraphQLClient, admin: str,
                                                      db_admin: asyncpg.Pool) -> None:
    """16,000 shoppers split 50/50 by the real assignment; 10% of the control and 13% of the treatment buy."""
    await api.ok(CREATE, {"input": experiment_input("lift-13")}, admin)
    definition = record("lift-13", 50, 50)
    names = {"v0": "control", "v1": "treatment"}
    assignments = {f"user:{i}": names[choose_variant(definition, f"user:{i}").name] for i in range(1, 16_001)}
    exposed_at = datetime.now(UTC) - timedelta(hours=1)
    await expose(db_admin, "lift-13", assignments, exposed_at)
    rng = np.random.default_rng(13)
    buyers = [s for s, v in assignments.items() if rng.random() < (0.10 if v == "control" else 0.13)]
    await insert_interactions(db_admin, [(s, "PURCHASE", exposed_at + timedelta(minutes=10), None) for s in buyers])

    results = (await api.ok(RESULTS, {"key": "lift-13"}, admin))["experimentResults"]
    control, treatment = results["variants"]
    assert control["exposures"] + treatment["exposures"] == 16_000
    assert control["conversions"] + treatment["conversions"] == len(buyers)
    assert treatment["pValue"] < 0.05
    assert treatment["ciLow"] > 0
    assert treatment["ciLow"] <= 0.30 <= treatment["ciHigh"]
    assert results["sampleRatioMismatch"] is False


async def test_a_broken_split_is_flagged(api: GraphQLClient, admin: str, db_admin: asyncpg.Pool) -> None:
    """A 50/50 experiment whose exposures came out 55/45 over 10,000 shoppers: the split is broken."""
    await api.ok(CREATE, {"input": experiment_input("skewed")}, admin)
    at = datetime.now(UTC)
    await expose(db_admin, "skewed", {f"user:{i}": "control" if i < 5500 else "treatment" for i in range(10_000)},
                 at)
    results = (await api.ok(RESULTS, {"key": "skewed"}, admin))["experimentResults"]
    assert [v["exposures"] for v in results["variants"]] == [5500, 4500]
    assert results["sampleRatioMismatch"] is True
    assert results["sampleRatioPValue"] < 0.001


async def test_results_of_an_experiment_nobody_saw(api: GraphQLClient, admin: str) -> None:
    await api.ok(CREATE, {"input": experiment_input()}, admin)
    results = (await api.ok(RESULTS, {"key": "recs-v2"}, admin))["experimentResults"]
    assert results["sampleRatioMismatch"] is False and results["sampleRatioPValue"] is None
    assert [(v["exposures"], v["rate"], v["lift"]) for v in results["variants"]] == [(0, None, None), (0, None, None)]

