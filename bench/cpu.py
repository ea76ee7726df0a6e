"""Where a scenario's CPU goes: CPU seconds per platform process, sampled at the start and end of the measured
window of a load run, reported as milliseconds of CPU per request.

Processes are grouped by what they are: each launcher child with its whole process tree (a subgraph's uvicorn
workers, the router's forks), the embedded Postgres (every backend), Redis, the broker, and the load generator
itself. A process that ended inside the window (a Postgres backend of a pooled connection that was closed) is
counted through its parent, which adds the CPU of every child it has reaped to its own "children" times; before
those times were counted, the connections a pool opened and closed under load (hundreds a run) went missing from
Postgres' figure.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from nexuscart.launcher import Platform

_INFRA_NAMES = (("postgres", "postgres"), ("redis", "redis"), ("tansu", "broker"), ("localstripe", "localstripe"))


class CpuProbe:
    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    def _owner(self, process: psutil.Process, roots: dict[int, str]) -> str | None:
        for ancestor in (process, *process.parents()):
            if ancestor.pid in roots:
                return roots[ancestor.pid]
        command = " ".join(process.cmdline()).lower()
        return next((label for needle, label in _INFRA_NAMES if needle in command), None)

    def snapshot(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far, per group."""
        roots = {child.pid: name for name, child in self._platform.children.items()}
        me = psutil.Process(os.getpid())
        totals: dict[str, float] = {"load generator": sum(me.cpu_times()[:2])}
        for process in me.children(recursive=True):
            try:
                owner = self._owner(process, roots)
                if owner is not None:
                    totals[owner] = totals.get(owner, 0.0) + _cpu_seconds_with_reaped_children(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return totals


def _cpu_seconds_with_reaped_children(process: psutil.Process) -> float:
    """User + system CPU of `process` and of its children that ended and were reaped (a live child is counted on
    its own, and enters its parent's children times only once reaped: nothing is counted twice)."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def wait_until_idle(probe: CpuProbe, *, busy_share: float = 0.5, window: float = 2.0,
                    timeout: float = 120.0) -> tuple[float, float]:
    """Wait until the platform (load generator excluded) uses under `busy_share` of one core over a `window`, at
    most `timeout` seconds; returns (seconds waited, share of a core used in the last window). After a boot with
    demo data, the workers spend tens of seconds consuming the seed's events and the services warm their caches:
    a scenario measured meanwhile reads that work, not its own, and only the first scenarios of a run would pay
    for it. Idle, the consumers' and the broker's polling keep ~40% of a core busy: the bar is above that."""
    started = time.monotonic()
    busy = 0.0
    while time.monotonic() - started < timeout:
        before = probe.snapshot()
        time.sleep(window)  # the sampling window, not a stand-in for a condition: the loop checks the condition
        after = probe.snapshot()
        busy = sum(after[name] - before.get(name, 0.0) for name in after if name != "load generator") / window
        if busy < busy_share:
            break
    return time.monotonic() - started, busy


def cpu_ms_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request per group, largest first; groups under 0.05 ms left out."""
    if requests <= 0:
        return {}
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / requests for name in after}
    return {name: round(ms, 2) for name, ms in sorted(spent.items(), key=lambda item: -item[1]) if ms >= 0.05}
