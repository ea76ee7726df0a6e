"""The worker's join watchdog: a consumer left without partitions (a join or rebalance that does not end) is
noticed after the limit and started again; one that has an assignment, even an empty one, is left alone."""
from __future__ import annotations

import asyncio

from kernel.consumer import AssignmentTracker
from workers.runtime import _join_stalled


async def test_a_consumer_never_assigned_is_found_stalled_after_the_limit() -> None:
    tracker = AssignmentTracker()
    await asyncio.wait_for(_join_stalled(tracker, limit=0.6), timeout=5)


async def test_a_consumer_with_an_assignment_is_not_stalled_and_the_count_restarts_after_a_rebalance() -> None:
    tracker = AssignmentTracker()
    await tracker.on_partitions_assigned(set())  # joined, with no partitions for this member: not stalled
    watchdog = asyncio.create_task(_join_stalled(tracker, limit=0.6))
    await asyncio.sleep(1.5)
    assert not watchdog.done()
    await tracker.on_partitions_revoked(set())  # a rebalance begins ...
    await asyncio.sleep(0.5)
    await tracker.on_partitions_assigned(set())  # ... and ends before the limit
    await asyncio.sleep(1.0)
    assert not watchdog.done()
    await tracker.on_partitions_revoked(set())  # one that does not end
    await asyncio.wait_for(watchdog, timeout=5)
