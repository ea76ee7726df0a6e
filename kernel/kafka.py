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


# How long the broker may hold a consumer's fetch while its partitions are idle. The embedded broker (Tansu)
# answers a held fetch only when this wait ends, even if events arrive meanwhile, so on it each hop through
# Kafka waits about half of it on average; real Kafka answers as soon as an event arrives. Idle fetching is
# not free either: with every group at 100 ms the broker and workers used about 0.67 of a core doing
# nothing (13 groups x 2 workers), at 500 ms about 0.22. So groups a shopper waits for (ConsumerSpec.prompt:
# the order saga, the cart) fetch at 100 ms (placeOrder -> PAID ~135 ms p50 for one order), the others at
# 500 ms (search freshness p50 254 ms, p99 282 ms, against a 1 s target).
PROMPT_FETCH_WAIT_MS = 100
BACKGROUND_FETCH_WAIT_MS = 500


def create_consumer(bootstrap_servers: str, group_id: str, topics: list[str], *,
                    auto_offset_reset: str = "earliest", prompt: bool = True) -> AIOKafkaConsumer:
    """A consumer of `group_id` with manual commits; `prompt` picks the idle fetch wait (see above)."""
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap_servers, group_id=group_id,
                            enable_auto_commit=False, auto_offset_reset=auto_offset_reset,
                            fetch_max_wait_ms=PROMPT_FETCH_WAIT_MS if prompt else BACKGROUND_FETCH_WAIT_MS)


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
