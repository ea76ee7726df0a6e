"""aiokafka producer/consumer construction and the topic catalogue."""
from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger("nexuscart.kafka")

# DESIGN.md's event catalogue; topic name == event type. Added to it: `order.refunded` (the saga's last
# compensation step), `inventory.low_stock`, and `inventory.stock_changed` (the available level of one
# variant after any change, which the cart's availability projection is fed from).
TOPICS = (
    "user.registered",
    "product.created", "product.updated", "product.deleted", "product.viewed",
    "cart.item_added",
    "order.placed", "order.confirmed", "order.paid", "order.cancelled", "order.shipped", "order.delivered",
    "order.refunded",
    "inventory.reserved", "inventory.out_of_stock", "inventory.released", "inventory.committed",
    "inventory.low_stock", "inventory.stock_changed",
    "payment.successful", "payment.failed", "payment.refunded",
    "shipment.created", "shipment.status_updated",
    "review.created",
    "flashsale.scheduled", "flashsale.purchased", "flashsale.ended", "inventory.flash_sale_held",
    "coupon.redemption_released",
)
DLQ_TOPIC = "nexuscart.dlq"
DEFAULT_PARTITIONS = 3


def create_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # No enable_idempotence: the embedded Tansu broker does not implement InitProducerId. Duplicates
    # from a retried send are harmless because every consumer deduplicates through its inbox.
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=2,
                            request_timeout_ms=15000)


def create_consumer(bootstrap_servers: str, group_id: str, topics: list[str], *,
                    auto_offset_reset: str = "earliest") -> AIOKafkaConsumer:
    # fetch_max_wait_ms: how long the broker may hold a fetch on an idle partition. Each saga step is a hop
    # through Kafka, and the default 500 ms made one order's placeOrder -> PAID take ~330 ms (p50); 50 ms
    # brought it to ~135 ms but idle fetching then cost a quarter of a core (broker + workers); 100 ms is
    # the middle.
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap_servers, group_id=group_id,
                            enable_auto_commit=False, auto_offset_reset=auto_offset_reset, fetch_max_wait_ms=100)


async def ensure_topics(bootstrap_servers: str, topics: tuple[str, ...] = TOPICS + (DLQ_TOPIC,),
                        partitions: int = DEFAULT_PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them between list and create
            log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()
