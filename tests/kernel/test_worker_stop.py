"""How the worker tells a stop from a crash: a stop wakes every task at once, so a periodic job may finish before
the worker sees the stop itself. Such a job is a clean stop (CI once failed on an ERROR "worker task ended" for
the payment-timeout sweep during Ctrl-C); a job that ends with nobody asking, or raises, is a crash."""
from __future__ import annotations

import asyncio

import pytest

from kernel.consumer import PeriodicTask
from workers.runtime import _ended_unasked, _run_periodic


async def _sweep() -> None:
    return None


async def test_a_periodic_job_that_returns_because_of_a_stop_is_not_a_crash() -> None:
    stop = asyncio.Event()
    job = asyncio.create_task(_run_periodic(PeriodicTask("sweep", 60.0, _sweep), stop))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.sleep(0)  # the job has run once and waits for its interval
    stop.set()
    done, _ = await asyncio.wait({job, stopper}, return_when=asyncio.ALL_COMPLETED, timeout=5)
    assert job in done
    assert not _ended_unasked(job, stop)


async def test_a_task_that_ends_with_no_stop_asked_or_raises_is_a_crash() -> None:
    stop = asyncio.Event()
    returned = asyncio.create_task(_sweep())
    await returned
    assert _ended_unasked(returned, stop)

    async def broken() -> None:
        raise RuntimeError("the broker went away")

    raised = asyncio.create_task(broken())
    with pytest.raises(RuntimeError):
        await raised
    stop.set()
    assert _ended_unasked(raised, stop)  # still a crash, even while stopping
