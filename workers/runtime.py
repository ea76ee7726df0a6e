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

from prometheus_client import Counter

from kernel import ids
from kernel.consumer import ConsumerSpec, IdempotentConsumer, PeriodicTask, WorkerResources
from kernel.db import create_engine, create_session_factory
from kernel.kafka import create_consumer, create_producer, ensure_topics
from kernel.redis import create_redis
from kernel.settings import Settings
from nexuscart.registry import SUBGRAPHS
from workers.health import HealthCheck

log = logging.getLogger("nexuscart.worker")

PERIODIC_FAILURES = Counter("nexuscart_periodic_task_failures_total", "Periodic task runs that raised", ["task"])


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
        except Exception:  # one failed sweep must not end the loop; the next one retries
            PERIODIC_FAILURES.labels(task.name).inc()
            log.exception("periodic task failed", extra={"task": task.name})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=task.interval_seconds)  # the interval, or stop at once


class Worker:
    def __init__(self, settings: Settings, only: set[str] | None = None) -> None:
        self.settings = settings
        self.only = only
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.started_at = time.time()

    def health(self) -> HealthCheck:
        def check() -> tuple[bool, dict[str, Any]]:
            dead = sorted(name for name, task in self.tasks.items() if task.done())
            return bool(self.tasks) and not dead, {"running": sorted(set(self.tasks) - set(dead)), "dead": dead}
        return check

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        settings.require_peers("database_url", "redis_url", "kafka_bootstrap_servers")
        await ensure_topics(settings.kafka_bootstrap_servers)
        engine = create_engine(settings)
        redis = create_redis(settings)
        _, lease_key = await ids.claim_node_id(redis)
        lease = asyncio.create_task(ids.renew_node_lease(redis, lease_key))
        resources = WorkerResources(settings=settings, session_factory=create_session_factory(engine), redis=redis)
        consumer_specs, periodic = collect(resources, self.only)
        dlq_producer = create_producer(settings.kafka_bootstrap_servers)
        await dlq_producer.start()
        kafka_consumers = []
        try:
            for spec in consumer_specs:
                consumer = create_consumer(settings.kafka_bootstrap_servers, spec.name, list(spec.topics))
                await consumer.start()
                kafka_consumers.append(consumer)
                runner = IdempotentConsumer(
                    name=spec.name, schema=spec.schema, consumer=consumer, dlq_producer=dlq_producer,
                    session_factory=resources.session_factory, handler=spec.handler,
                    max_attempts=settings.consumer_max_attempts,
                    backoff_base_seconds=settings.consumer_backoff_base_seconds,
                    transaction_batch=spec.transaction_batch)
                self.tasks[spec.name] = asyncio.create_task(runner.run(), name=spec.name)
            for job in periodic:
                self.tasks[job.name] = asyncio.create_task(_run_periodic(job, stop), name=job.name)
            log.info("worker started", extra={"consumers": [c.name for c in consumer_specs],
                                              "periodic": [p.name for p in periodic]})
            # Run until asked to stop, or until a task dies (then exit non-zero so a supervisor restarts us).
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({stopper, *self.tasks.values()}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            crashed = [t for t in done if t is not stopper]
            for task in crashed:
                log.error("worker task ended", extra={"task": task.get_name()},
                          exc_info=task.exception() if not task.cancelled() else None)
            if crashed:
                raise SystemExit(1)
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            for consumer in kafka_consumers:
                await consumer.stop()
            await dlq_producer.stop()
            lease.cancel()
            await redis.delete(lease_key)
            await redis.aclose()
            await engine.dispose()
