"""Outbox relay throughput: events/s draining a backlog of 100,000 outbox rows into the broker.

The backlog is written straight into a schema of its own (`relay_bench`, the kernel's outbox tables only),
with envelopes of a realistic size, then the real relay (workers/outbox_relay.run_relay) publishes it and
marks it published; the clock runs from its start to the last row marked. The rows go to a topic of its own,
so no consumer of the platform reads them. Each run starts from a fresh backlog.

`python -m bench.relay_bench` runs it alone on a private embedded Postgres and broker.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from prometheus_client import REGISTRY

from bench.httpload import LoadResult
from kernel.db import asyncpg_dsn
from kernel.events import EventEnvelope
from kernel.kafka import ensure_topics
from kernel.migrate import migrate_all
from kernel.settings import Settings
from workers.outbox_relay import run_relay

SCHEMA = "relay_bench"
TOPIC = "nexuscart.relay-bench"
BACKLOG = 100_000


@dataclasses.dataclass
class ThroughputResult(LoadResult):
    """Events per second of one drain; `latencies_ms` holds the time each 10,000 events took."""
    events: int = 0

    @property
    def requests(self) -> int:
        return self.events

    def row(self) -> str:
        return f"{self.name:<50} {self.events:>7} events in {self.seconds:6.2f} s  {self.rps:>9.1f} events/s"


async def _fill_backlog(conn: asyncpg.Connection, rows: int) -> None:
    await conn.execute(f"TRUNCATE {SCHEMA}.outbox, {SCHEMA}.outbox_broker_marks")
    # An order.placed-sized envelope (~600 bytes); each row its own event id and aggregate key.
    sample = EventEnvelope.new(TOPIC, {"orderId": "1", "items": [{"sku": "SKU-0001", "quantity": 1,
                                                                   "unitPrice": "19.99"}] * 5,
                                       "note": "x" * 200}).to_json()
    await conn.execute(
        f"INSERT INTO {SCHEMA}.outbox (event_id, topic, key, envelope) "
        f"SELECT gen_random_uuid(), $1, (i % 5000)::text, $2 FROM generate_series(1, $3) AS i",
        TOPIC, sample, rows)


async def drain_once(database_url: str, bootstrap: str, *, batch_size: int, rows: int = BACKLOG,
                     name: str = "") -> ThroughputResult:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await _fill_backlog(conn, rows)
        settings = Settings(database_url=database_url, kafka_bootstrap_servers=bootstrap,
                            outbox_batch_size=batch_size, service_name="relay-bench")
        stop = asyncio.Event()
        started = time.perf_counter()
        relay = asyncio.create_task(run_relay(settings, [SCHEMA], stop=stop))
        checkpoints: list[float] = []
        def published() -> float:
            # The relay's own counter (in this process), not a count(*) per poll: the bench must not load Postgres.
            return REGISTRY.get_sample_value("nexuscart_outbox_published_total", {"schema": SCHEMA}) or 0.0

        base = published()
        try:
            next_mark = 10_000
            while True:
                done = int(published() - base)
                while done >= next_mark and next_mark <= rows:
                    checkpoints.append(time.perf_counter())
                    next_mark += 10_000
                if done >= rows or relay.done():
                    break
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - started
        finally:
            stop.set()
            await relay
    finally:
        await conn.close()
    steps = [b - a for a, b in zip([started, *checkpoints], checkpoints, strict=False)]
    return ThroughputResult(name=name or f"outbox relay drain, batch {batch_size}", concurrency=1, seconds=seconds,
                            latencies_ms=[s * 1000 for s in steps], errors=0 if done >= rows else rows - done,
                            events=done)


async def relay_scenarios(database_url: str, bootstrap: str, *, runs: int = 3,
                          batch_sizes: tuple[int, ...] = (0,)) -> list[ThroughputResult]:
    """`runs` drains of the backlog per batch size (0: the relay's configured default)."""
    await migrate_all(database_url, {SCHEMA: "bench"})  # the bench package has no .sql: kernel tables only
    await ensure_topics(bootstrap, (TOPIC,))
    results = []
    for batch_size in batch_sizes:
        size = batch_size or Settings().outbox_batch_size
        for run in range(1, runs + 1):
            result = await drain_once(database_url, bootstrap, batch_size=size,
                                      name=f"outbox relay: {BACKLOG:,} backlog, batch {size}, run {run}")
            print(result.row(), flush=True)
            results.append(result)
    return results


def main() -> None:
    from nexuscart.infra import start_infrastructure

    data_dir = Path(tempfile.mkdtemp(prefix=f"relay-bench-{uuid.uuid4().hex[:6]}-"))
    infra = start_infrastructure(data_dir, database_url=os.environ.get("DATABASE_URL"),
                                 kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    sizes = tuple(int(s) for s in os.environ.get("RELAY_BENCH_BATCH_SIZES", "0").split(","))
    try:
        asyncio.run(relay_scenarios(infra.database_url, infra.kafka_bootstrap_servers, batch_sizes=sizes))
    finally:
        infra.stop()


if __name__ == "__main__":
    main()
