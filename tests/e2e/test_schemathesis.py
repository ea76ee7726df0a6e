"""Property-based fuzzing of the router's composed GraphQL schema: no 5xx, no leaked internals."""
from __future__ import annotations

import json
import os

import schemathesis
from hypothesis import HealthCheck, given, settings

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", 15))
LEAK_MARKERS = ("Traceback", "INTERNAL_SERVER_ERROR", "asyncpg", "sqlalchemy", "SELECT ", "File \"")


def test_fuzzed_operations_never_fail_internally(platform) -> None:
    schema = schemathesis.graphql.from_url(platform.router_url, wait_for_schema=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, "the composed schema should expose every subgraph's root fields"
    failures: list[str] = []

    for operation in operations:
        _fuzz(operation, failures)
    assert not failures, "\n".join(failures[:10])


def _fuzz(operation, failures: list[str]) -> None:
    """Hypothesis runs `check` for MAX_EXAMPLES generated calls of `operation`, recording what failed."""

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call()
        text = response.text
        if response.status_code >= 500 or any(marker in text for marker in LEAK_MARKERS):
            failures.append(f"{operation.label}: HTTP {response.status_code} for "
                            f"{json.dumps(case.body)[:300]} -> {text[:300]}")

    check()
