"""The worker process: every domain's event consumers and periodic jobs (the order saga among them).

Each domain declares what it runs in its own `subgraphs/<name>/consumers.py` (`consumer_specs(resources)` and
`periodic_tasks(resources)`; its `events.py` is only the contract of what it emits); this module only hosts
them: one Kafka consumer group per spec wrapped in the kernel's IdempotentConsumer (inbox, retries with
backoff, DLQ), plus the periodic loops, plus /health and /metrics. State lives in Postgres and Kafka offsets,
so a killed worker resumes where it left.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import time
from types import ModuleType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from kernel import ids
from kernel.consumer import (
    AssignmentTracker,
    ConsumerSpec,
    IdempotentConsumer,
    PeriodicTask,
    PromptFirst,
    WorkerResources,
)
from kernel.db import create_engine, create_session_factory, is_contention, sqlstate
from kernel.kafka import create_consumer, create_producer, ensure_topics
from kernel.redis import create_redis
from kernel.settings import Settings
from kernel.tracing import setup_tracing
from nexuscart.registry import SUBGRAPHS
from workers.health import HealthCheck

log = logging.getLogger("nexuscart.worker")

# The longest the periodic jobs wait for this process's consumer groups to join (a rejoin takes about one
# session timeout, 10 s; a broker restart a few more).
PERIODIC_START_WAIT_SECONDS = 45.0
PERIODIC_FAILURES = Counter("nexuscart_periodic_task_failures_total", "Periodic task runs that raised", ["task"])
CONSUMER_RESTARTS = Counter("nexuscart_consumer_restarts_total", "Consumers started again after a broker error",
                            ["consumer"])
# On stop, how long consumers may take to finish the batch in hand and commit its offsets before they are cancelled
# (the launcher's whole stop stays under 5 s).
DRAIN_SECONDS = 2.0
# A consumer without partitions for this long is started again: a join or rebalance normally ends within a
# session timeout (10 s) plus a rejoin.
JOIN_STALL_SECONDS = 30.0


def consumer_modules() -> list[ModuleType]:
    """Every domain's consumers.py (a domain that consumes nothing and runs no job has none), in registry order."""
    names = [f"subgraphs.{subgraph.name}.consumers" for subgraph in SUBGRAPHS]
    return [importlib.import_module(name) for name in names if importlib.util.find_spec(name) is not None]


def collect(resources: WorkerResources, only: set[str] | None = None) -> tuple[list[ConsumerSpec], list[PeriodicTask]]:
    consumers: list[ConsumerSpec] = []
    periodic: list[PeriodicTask] = []
    for module in consumer_modules():
        consumers += module.consumer_specs(resources)
        periodic += module.periodic_tasks(resources)
    if only:
        consumers = [c for c in consumers if c.name in only]
        periodic = [p for p in periodic if p.name in only]
    return consumers, periodic


async def _run_periodic(task: PeriodicTask, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await task.run()
        except Exception as exc:  # one failed sweep must not end the loop; the next one retries
            if is_contention(exc):
                # A consumer held rows the sweep wanted (a deadlock Postgres broke): nothing is wrong, and the
                # next run takes them.
                log.info("periodic task lost to a concurrent transaction; it runs again next time",
                         extra={"task": task.name, "sqlstate": sqlstate(exc)})
            else:
                PERIODIC_FAILURES.labels(task.name).inc()
                log.exception("periodic task failed", extra={"task": task.name})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=task.interval_seconds)  # the interval, or stop at once


def _ended_unasked(task: asyncio.Task[Any], stop: asyncio.Event) -> bool:
    """A finished task is a crash unless it returned cleanly because a stop was asked: the stop event wakes every
    task together, so a periodic job or consumer may finish before the waiter on the event itself is seen."""
    if task.cancelled() or task.exception() is not None:
        return True
    return not stop.is_set()


class JoinStalled(Exception):
    """A consumer that has had no partitions assigned for too long (see `_join_stalled`)."""


async def _join_stalled(tracker: AssignmentTracker, limit: float) -> None:
    """Returns once the consumer has been without an assignment for `limit` seconds in a row (joining, or a
    rebalance that does not end); an assignment, even an empty one, starts the count again."""
    unassigned_since: float | None = None
    while True:
        if tracker.assigned is None:
            unassigned_since = unassigned_since or time.monotonic()
            if time.monotonic() - unassigned_since > limit:
                return
        else:
            unassigned_since = None
        await asyncio.sleep(0.5)  # polled: assignments arrive in the consumer's own task

class Worker:
    def __init__(self, settings: Settings, only: set[str] | None = None) -> None:
        self.settings = settings
        self.only = only
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.trackers: dict[str, AssignmentTracker] = {}  # consumer group -> what this process owns of it
        self.consumers: dict[str, tuple[AIOKafkaConsumer, tuple[str, ...]]] = {}  # group -> its consumer, topics
        self.started_at = time.time()
        # The groups a shopper waits for go first (kernel/consumer.py); the others wait for a quiet moment, or
        # for this long at most.
        self.priority = PromptFirst(max_defer_seconds=settings.worker_background_max_defer_seconds)

    def health(self) -> HealthCheck:
        """Liveness: every consumer and periodic job is still running."""
        def check() -> tuple[bool, dict[str, Any]]:
            dead = sorted(name for name, task in self.tasks.items() if task.done())
            return bool(self.tasks) and not dead, {"running": sorted(set(self.tasks) - set(dead)), "dead": dead}
        return check

    def readiness(self) -> HealthCheck:
        """Ready: alive, and every consumer group has been joined (its partitions assigned, maybe none to this
        process). `groups` lists what this process owns; the launcher checks that the workers together own every
        partition of every group."""
        live = self.health()

        def check() -> tuple[bool, dict[str, Any]]:
            alive, _ = live()
            groups = {name: {"assigned": None if tracker.assigned is None
                             else sorted(f"{tp.topic}/{tp.partition}" for tp in tracker.assigned),
                             "partitions": self._partitions(name)}
                      for name, tracker in self.trackers.items()}
            joined = all(group["assigned"] is not None and group["partitions"] is not None
                         for group in groups.values())
            return alive and joined, {"groups": groups}
        return check

    async def _wait_joined(self, stop: asyncio.Event, groups: int, within: float) -> None:
        """Until every consumer group has joined, a task has crashed (the caller reports it), or `within` seconds
        have passed: then the groups still waiting are logged and the caller goes on."""
        deadline = time.monotonic() + within
        while not stop.is_set() and not (len(self.trackers) == groups
                                         and all(t.assigned is not None for t in self.trackers.values())):
            crashed = [t for t in self.tasks.values() if t.done()]
            if crashed:
                return
            if time.monotonic() > deadline:
                log.warning("consumer groups not joined yet; starting the periodic jobs anyway",
                            extra={"waiting": sorted(n for n, t in self.trackers.items() if t.assigned is None),
                                   "waited_seconds": within})
                return
            await asyncio.sleep(0.1)  # polled: the join completes in the consumers' own tasks

    def _partitions(self, group: str) -> int | None:
        """Partitions of the group's topics in the consumer's metadata; None while a topic is not known yet."""
        consumer, topics = self.consumers[group]
        counts = [consumer.partitions_for_topic(topic) for topic in topics]
        if any(c is None for c in counts):
            return None
        return sum(len(c) for c in counts)

    async def _consume(self, spec: ConsumerSpec, resources: WorkerResources, dlq_producer: AIOKafkaProducer,
                       stop: asyncio.Event) -> None:
        """One consumer group, started again after a broker error (a restarted broker, a lost coordinator), so a
        broker restart never needs a worker restart. Offsets are committed per batch: a restart re-reads at most
        the batch in hand, and the inbox drops what was already applied."""
        settings = self.settings
        failures = 0
        while not stop.is_set():
            tracker = AssignmentTracker()
            self.trackers[spec.name] = tracker
            consumer = create_consumer(settings.kafka_bootstrap_servers, spec.name, list(spec.topics),
                                       prompt=spec.prompt)
            consumer.subscribe(list(spec.topics), listener=tracker)
            self.consumers[spec.name] = (consumer, spec.topics)
            runner = IdempotentConsumer(
                name=spec.name, schema=spec.schema, consumer=consumer, dlq_producer=dlq_producer,
                session_factory=resources.session_factory, handler=spec.handler,
                max_attempts=settings.consumer_max_attempts,
                backoff_base_seconds=settings.consumer_backoff_base_seconds,
                transaction_batch=spec.transaction_batch, prepare_batch=spec.prepare_batch,
                priority=self.priority, prompt=spec.prompt, key_concurrency=spec.key_concurrency,
                latest_only=spec.latest_only_fields)

            async def start_and_run(consumer: AIOKafkaConsumer = consumer, runner: IdempotentConsumer = runner) -> None:
                await consumer.start()  # returns once the group is joined: watched too
                await runner.run(stop)

            try:
                consuming = asyncio.create_task(start_and_run(), name=f"{spec.name}-run")
                stalled = asyncio.create_task(_join_stalled(tracker, JOIN_STALL_SECONDS), name=f"{spec.name}-join")
                try:
                    await asyncio.wait({consuming, stalled}, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    consuming.cancel()  # this worker is stopping past its drain time: so does the consumer
                    stalled.cancel()
                    raise
                if not consuming.done():
                    # No partitions for that long: the join is stuck (seen with the embedded broker after both
                    # workers restarted: every group of both waited minutes and nothing was consumed). A fresh
                    # member joins anew. Nothing is lost: without partitions there is no batch in hand.
                    consuming.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await consuming
                    raise JoinStalled(f"no partitions assigned within {JOIN_STALL_SECONDS:.0f} s")
                stalled.cancel()
                consuming.result()  # a broker error ends up below; a clean return is a stop
                return
            except (KafkaError, JoinStalled) as exc:
                failures += 1
                CONSUMER_RESTARTS.labels(spec.name).inc()
                delay = min(10.0, 0.5 * 2 ** min(failures, 5))
                log.warning("consumer failed; starting it again", extra={"consumer": spec.name,
                                                                         "error": repr(exc), "retry_in": delay})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)  # back off, but stop at once if asked
            finally:
                tracker.assigned = None
                # Bounded: leaving a group through a stuck coordinator must not hold up a restart or a stop.
                with contextlib.suppress(KafkaError, TimeoutError):
                    await asyncio.wait_for(consumer.stop(), timeout=10)

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        settings.require_peers("database_url", "redis_url", "kafka_bootstrap_servers")
        setup_tracing("worker", settings)  # spans only when OTEL_EXPORTER_OTLP_ENDPOINT is set
        await ensure_topics(settings.kafka_bootstrap_servers)
        engine = create_engine(settings)
        redis = create_redis(settings)
        _, lease_key = await ids.claim_node_id(redis)
        lease = asyncio.create_task(ids.renew_node_lease(redis, lease_key))
        resources = WorkerResources(settings=settings, session_factory=create_session_factory(engine), redis=redis)
        consumer_specs, periodic = collect(resources, self.only)
        dlq_producer = create_producer(settings.kafka_bootstrap_servers)
        await dlq_producer.start()
        try:
            for spec in consumer_specs:
                self.tasks[spec.name] = asyncio.create_task(
                    self._consume(spec, resources, dlq_producer, stop), name=spec.name)
            # Periodic jobs judge what the consumers have not done yet (a payment that never came, a stalled saga
            # step): they start once this process's consumers have joined their groups, or they would act on a
            # backlog of answers still waiting in Kafka (after a restart, a rejoin can take a session timeout).
            # Not "once the backlog is applied": one slow event (a provider call retrying) would then hold off
            # the very reconciler that settles it. And not forever: a group stuck rebalancing must not keep
            # every job (the reconciler, the saga's timeouts) from running; each acts forward-only, by state.
            await self._wait_joined(stop, len(consumer_specs), within=PERIODIC_START_WAIT_SECONDS)
            for job in periodic:
                self.tasks[job.name] = asyncio.create_task(_run_periodic(job, stop), name=job.name)
            log.info("worker started", extra={"consumers": [c.name for c in consumer_specs],
                                              "periodic": [p.name for p in periodic]})
            # Run until asked to stop, or until a task dies (then exit non-zero so a supervisor restarts us).
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({stopper, *self.tasks.values()}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            crashed = [t for t in done if t is not stopper and _ended_unasked(t, stop)]
            for task in crashed:
                log.error("worker task ended", extra={"task": task.get_name()},
                          exc_info=task.exception() if not task.cancelled() else None)
            if crashed:
                raise SystemExit(1)
            # Drain: each consumer finishes the batch in hand and commits its offsets; then the rest is cancelled.
            pending = [t for t in self.tasks.values() if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=DRAIN_SECONDS)
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            with contextlib.suppress(KafkaError):
                await dlq_producer.stop()
            lease.cancel()
            await redis.delete(lease_key)
            await redis.aclose()
            await engine.dispose()
