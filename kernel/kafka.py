"""aiokafka producer/consumer construction and the topics to create."""
from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from kernel.events import load_contracts

log = logging.getLogger("nexuscart.kafka")

DLQ_TOPIC = "nexuscart.dlq"
DEFAULT_PARTITIONS = 3


def create_producer(bootstrap_servers: str, *, max_batch_size: int = 16384) -> AIOKafkaProducer:
    # No enable_idempotence: the embedded Tansu broker does not implement InitProducerId. Duplicates
    # from a retried send are harmless because every consumer deduplicates through its inbox.
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=2,
                            request_timeout_ms=15000, max_batch_size=max_batch_size)


def create_consumer(bootstrap_servers: str, group_id: str, topics: list[str], *,
                    auto_offset_reset: str = "earliest") -> AIOKafkaConsumer:
    # fetch_max_wait_ms: how long the broker may hold a fetch on an idle partition. Each saga step is a hop
    # through Kafka, and the default 500 ms made one order's placeOrder -> PAID take ~330 ms (p50); 50 ms
    # brought it to ~135 ms but idle fetching then cost a quarter of a core (broker + workers); 100 ms is
    # the middle.
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap_servers, group_id=group_id,
                            enable_auto_commit=False, auto_offset_reset=auto_offset_reset, fetch_max_wait_ms=100)


def all_topics() -> tuple[str, ...]:
    """Every topic an event payload type declares (each domain's events.py; topic name == event type), plus the
    DLQ. A topic exists because something produces it: its payload type is the producer's contract."""
    return (*sorted(load_contracts()), DLQ_TOPIC)


async def ensure_topics(bootstrap_servers: str, topics: tuple[str, ...] | None = None,
                        partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create the missing ones of `topics` (default: `all_topics()`)."""
    wanted = all_topics() if topics is None else topics
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created them between list and create
                await admin.create_topics(missing)
            log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()
