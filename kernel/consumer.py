"""Idempotent event consumption: inbox dedup, retry with backoff, DLQ for poison messages.

For each message the handler runs in one database transaction together with the inbox insert, so
"applied" and "recorded as applied" commit together; a redelivered event finds its inbox row and
changes nothing. Offsets are committed only after the message is applied or parked on the DLQ.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.db import is_contention, is_outage, sqlstate
from kernel.events import EventEnvelope, EventPayload
from kernel.kafka import DLQ_TOPIC
from kernel.logs import correlation_id_var
from kernel.tracing import consumer_span
from kernel.uow import unit_of_work

log = logging.getLogger("nexuscart.consumer")

# Longest wait between two tries while Postgres or Redis is away.
OUTAGE_BACKOFF_CAP_SECONDS = 5.0
# Tries of an event that lost to a concurrent transaction (a deadlock between two workers' batches) before they
# count as failures: far more than contention ever needs, few enough that a handler deadlocking on itself ends.
CONTENTION_RETRIES = 10


EventHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]
# Handles one payload type: (session, the parsed payload). Typed as Any: a mapping cannot tie each key's type to
# its value's parameter.
PayloadHandler = Callable[[AsyncSession, Any], Awaitable[Any]]
# Runs first in a transaction that applies several events together, with their parsed payloads (see
# ConsumerSpec.before_batch).
BatchPreparer = Callable[[AsyncSession, list[EventPayload]], Awaitable[None]]


@dataclasses.dataclass
class WorkerResources:
    """What a domain's event handlers and periodic tasks get from the worker process."""
    settings: Any
    session_factory: async_sessionmaker[AsyncSession]
    redis: Any
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group a domain runs in the worker process (workers/runtime.py).

    `name` is the consumer group id and the inbox's consumer column; `schema` the domain schema holding
    that inbox; `handlers` maps each payload type the group handles to its handler, so the group subscribes to
    exactly those types' topics. `handler` runs inside the inbox transaction: it parses the envelope's payload
    into its type (MalformedEvent: retried, then the DLQ) and calls that type's handler."""
    name: str
    schema: str
    handlers: Mapping[type[EventPayload], PayloadHandler]
    # Events of one partition per transaction. 1 for a handler that acts outside Postgres before its commit
    # (a payment provider): a batch rolled back for ANOTHER event's failure would undo the record of an act
    # that stays done, and a concurrent handler can decide on that gap before the one-by-one re-run.
    transaction_batch: int = 20
    # True for a group a shopper waits for (the order saga, payments, inventory, the cart): its events are
    # fetched within about 100 ms on the embedded broker instead of 500 ms, at the price of more idle fetching
    # (kernel/kafka.py), and in the worker its batches go before the other groups' (PromptFirst).
    prompt: bool = False
    # Runs at the start of a transaction that applies several events together. A handler that locks rows in a
    # fixed order cannot deadlock with itself one event at a time, but a batch locks event after event: batch
    # A takes row 5 then wants row 3 while batch B holds 3 and wants 5, Postgres waits deadlock_timeout (1 s)
    # and rolls one back, which is then applied one by one. Locking every row the batch will need, in order,
    # up front (inventory's stock rows) turns that into a short queue.
    before_batch: BatchPreparer | None = None
    # With transaction_batch 1: how many of a partition's events with DIFFERENT keys are applied at once (events
    # of one key, i.e. of one aggregate, always stay in order). For a handler that waits on something outside
    # (a payment provider, several commits per event), one at a time per partition bounds the group's
    # throughput by three partitions' worth of waiting.
    key_concurrency: int = 1
    # Payload types that carry the whole current state of one entity (inventory.stock_changed: a variant's
    # totals after the change), each with the payload field naming that entity. In a transaction that applies
    # several events, only the newest of each entity's events is handed to the handler; the older ones are
    # recorded in the inbox as applied, since the newest state replaces whatever they would have written. A hot
    # variant's stock changes arrive in bursts, and a projection (search, recommendations, the cart) gained
    # nothing from writing each intermediate total. Only for handlers whose effect depends on the state
    # alone, never on how many events came.
    latest_only: Mapping[type[EventPayload], str] = dataclasses.field(default_factory=dict)
    _by_topic: dict[str, tuple[type[EventPayload], PayloadHandler]] = dataclasses.field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_topic", {t.topic: (t, h) for t, h in self.handlers.items()})

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self._by_topic)

    @property
    def latest_only_fields(self) -> dict[str, str]:
        """`latest_only` by topic: what IdempotentConsumer takes."""
        return {payload_type.topic: field for payload_type, field in self.latest_only.items()}

    async def prepare_batch(self, session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
        """`before_batch` with the payloads of the batch's events this group handles (a malformed one raises:
        the batch is then applied one by one, where it fails alone)."""
        if self.before_batch is None:
            return
        payloads = [entry[0].from_payload(e.payload) for e in envelopes
                    if (entry := self._by_topic.get(e.event_type)) is not None]
        await self.before_batch(session, payloads)

    async def handler(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        entry = self._by_topic.get(envelope.event_type)
        if entry is None:  # another event type on one of our topics: not ours to act on, and not a failure
            log.warning("event type not handled by this group",
                        extra={"consumer": self.name, "event_type": envelope.event_type})
            return
        payload_type, handle = entry
        token = _current_envelope.set(envelope)
        try:
            await handle(session, payload_type.from_payload(envelope.payload))
        finally:
            _current_envelope.reset(token)


_current_envelope: contextvars.ContextVar[EventEnvelope] = contextvars.ContextVar("current_envelope")


def current_envelope() -> EventEnvelope:
    """The envelope of the event a handler is applying (its id, time, raw payload), for the handlers that need
    more than the typed payload: notifications keys its send ledger by the event id and forwards the payload to
    partner webhooks as it came. LookupError outside a handler."""
    return _current_envelope.get()


@dataclasses.dataclass(frozen=True)
class PeriodicTask:
    """A job the worker process runs every `interval_seconds` (e.g. the saga's payment-timeout sweep)."""
    name: str
    interval_seconds: float
    run: Callable[[], Awaitable[Any]]


class AssignmentTracker(ConsumerRebalanceListener):
    """What a consumer owns of its group: None until it has joined (and again while the group rebalances), then
    the partitions assigned to it, possibly none when the group has more members than partitions. A worker is
    ready once every group it runs has joined."""

    def __init__(self) -> None:
        self.assigned: frozenset[TopicPartition] | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.assigned = None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.assigned = frozenset(assigned)


class PromptFirst:
    """One per worker process: the consumer groups a shopper waits for (ConsumerSpec.prompt: the order saga,
    payments, inventory, the cart) apply their batches first. The others (notifications, search, shipping's and
    reviews' projections...) apply a batch they fetched only once no prompt group has had work for
    `quiet_seconds`, or once its oldest event is `max_defer_seconds` old (the worker's
    WORKER_BACKGROUND_MAX_DEFER_SECONDS), so under a burst they lag behind, by about that much at most, and are
    never starved. The bound is the events' age, not the time each batch waited: a backlog of batches would
    otherwise wait that long once per batch (a CI run saw an ORDER_PAID notification late by over 30 s). One event loop
    carries every group of the process: without this, a paid order waited behind each projection's batch of its
    own events (13 groups act on an order's events; 4 of them are on the way to PAID)."""

    def __init__(self, *, max_defer_seconds: float, quiet_seconds: float = 0.05) -> None:
        self.quiet_seconds = quiet_seconds
        self.max_defer_seconds = max_defer_seconds
        self._busy = 0
        self._last_busy = float("-inf")
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def prompt_work(self) -> Iterator[None]:
        """Around a prompt group's batch."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            self._last_busy = time.monotonic()
            if self._busy == 0:
                self._idle.set()

    async def background_turn(self, oldest_produced_ms: int | None = None) -> None:
        """Returns when a background group may apply the batch it holds (see the class). `oldest_produced_ms`:
        when its oldest event was produced (the broker record's timestamp, Unix ms); None counts from now."""
        wait_limit = self.max_defer_seconds
        if oldest_produced_ms is not None:
            # Wall clocks of the producer and this process: a record that seems to come from the future waits
            # the full limit, never longer.
            wait_limit -= max(0.0, time.time() - oldest_produced_ms / 1000)
        deadline = time.monotonic() + wait_limit
        while (now := time.monotonic()) < deadline:
            if self._busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), deadline - now)
                continue
            quiet_until = self._last_busy + self.quiet_seconds
            if now >= quiet_until:
                return
            # A prompt group just finished a batch and is fetching the next: give it that moment.
            await asyncio.sleep(min(quiet_until, deadline) - now)


class IdempotentConsumer:
    def __init__(self, *, name: str, schema: str, consumer: AIOKafkaConsumer, dlq_producer: AIOKafkaProducer,
                 session_factory: async_sessionmaker[AsyncSession], handler: EventHandler,
                 max_attempts: int = 5, backoff_base_seconds: float = 0.2, transaction_batch: int = 20,
                 prepare_batch: Callable[[AsyncSession, list[EventEnvelope]], Awaitable[None]] | None = None,
                 priority: PromptFirst | None = None, prompt: bool = False, key_concurrency: int = 1,
                 latest_only: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.schema = schema
        self.consumer = consumer
        self.dlq_producer = dlq_producer
        self.session_factory = session_factory
        self.handler = handler
        self.max_attempts = max_attempts
        self.backoff_base_seconds = backoff_base_seconds
        # Events of one partition applied per transaction (1 = each alone). Small enough that a batch holds
        # row locks (e.g. a hot variant's stock row) only briefly.
        self.transaction_batch = max(1, transaction_batch)
        self.prepare_batch = prepare_batch  # ConsumerSpec.prepare_batch: first in each multi-event transaction
        self.priority = priority  # the worker's PromptFirst (None: every batch at once, as in tests)
        self.prompt = prompt
        self.key_concurrency = max(1, key_concurrency)  # ConsumerSpec.key_concurrency
        self.latest_only = dict(latest_only or {})  # topic -> the payload field naming its entity (ConsumerSpec)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until `stop` is set; then the batch in hand is finished and its offsets committed first."""
        while stop is None or not stop.is_set():
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=100)
            except KafkaError as exc:
                # The broker is restarting or moved the group's coordinator: the client reconnects on its own;
                # nothing was handed out, so nothing is lost. Try again shortly.
                log.warning("fetch failed; retrying", extra={"consumer": self.name, "error": type(exc).__name__})
                await asyncio.sleep(1)  # backoff between fetches from a broker that is away
                continue
            if not batches:
                continue
            await self._apply_batches(batches)
            # One offset commit per batch rather than per record: at-least-once either way (a crash
            # re-delivers the batch and the inbox turns every already-applied event into a duplicate).
            try:
                await self.consumer.commit({TopicPartition(tp.topic, tp.partition): records[-1].offset + 1
                                            for tp, records in batches.items()})
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced while the batch was applied (another worker joined or left), so these
                # partitions may belong to someone else now. Their new owner re-reads from the last committed
                # offset and its inbox drops what was applied here: nothing is lost, nothing applied twice.
                log.warning("offset commit refused after a rebalance; the new owner re-reads those events",
                            extra={"consumer": self.name, "error": type(exc).__name__})
            except KafkaError as exc:
                # The broker went away mid-commit (a restart): the batch is read again from the last committed
                # offset and the inbox turns it into duplicates.
                log.warning("offset commit failed; those events will be read again",
                            extra={"consumer": self.name, "error": type(exc).__name__})

    async def _apply_batches(self, batches: Mapping[Any, list[ConsumerRecord]]) -> None:
        # Partitions are independent streams (one aggregate always lands on one partition), so they are
        # applied concurrently; within a partition, strictly in order.
        # A function, not one gather made up front: gather starts its tasks at the next await, so a background
        # group's batch would run during its own deferral (that bug only delayed its next fetch).
        def apply() -> Awaitable[list[None]]:
            return asyncio.gather(*(self._apply_partition(records) for records in batches.values()))

        if self.priority is None:
            await apply()
        elif self.prompt:
            with self.priority.prompt_work():
                await apply()
        else:
            await self.priority.background_turn(min(records[0].timestamp for records in batches.values()))
            await apply()

    async def _apply_partition(self, records: list[ConsumerRecord]) -> None:
        if self.transaction_batch == 1 and self.key_concurrency > 1:
            await self._apply_by_key(records)
            return
        for start in range(0, len(records), self.transaction_batch):
            chunk = records[start:start + self.transaction_batch]
            if len(chunk) > 1 and await self._apply_together(chunk):
                continue
            for record in chunk:  # one by one: retries with backoff, then the DLQ
                await self.process(record)

    async def _apply_by_key(self, records: list[ConsumerRecord]) -> None:
        """One lane per key, each in order; up to `key_concurrency` lanes at once. The batch's offsets are
        committed once every lane is done, as for a sequential batch."""
        lanes: dict[bytes | None, list[ConsumerRecord]] = {}
        for record in records:
            lanes.setdefault(record.key, []).append(record)
        slots = asyncio.Semaphore(self.key_concurrency)

        async def run(lane: list[ConsumerRecord]) -> None:
            async with slots:
                for record in lane:
                    await self.process(record)

        await asyncio.gather(*(run(lane) for lane in lanes.values()))

    async def _apply_together(self, records: list[ConsumerRecord]) -> bool:
        """Apply consecutive records of one partition in ONE transaction: a burst costs one BEGIN/COMMIT
        (and one WAL flush) instead of one per event, the worker's main cost after the handlers themselves.
        If any record fails to decode or apply, nothing is kept and False sends the caller one by one;
        handlers are idempotent (at-least-once delivery), so running the good ones again is harmless."""
        try:
            envelopes = [EventEnvelope.from_json(r.value) for r in records]
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return False
        try:
            async with unit_of_work(self.session_factory) as session:
                if self.prepare_batch is not None:
                    await self.prepare_batch(session, envelopes)
                fresh = await self._record_in_inbox(session, envelopes)
                superseded = self._superseded(envelopes)
                for record, envelope in zip(records, envelopes, strict=True):
                    correlation_id_var.set(envelope.correlation_id)
                    event_id = uuid.UUID(envelope.event_id)
                    if event_id in fresh:
                        fresh.discard(event_id)  # the same event twice in one batch is applied once
                        if event_id in superseded:
                            continue  # a later event of this batch carries the entity's newer state
                        with consumer_span(record, self.name):
                            await self.handler(session, envelope)
        except Exception as exc:  # noqa: BLE001 - retried one by one, where failures are isolated
            log.info("batch failed; applying its events one by one",
                     extra={"consumer": self.name, "events": len(envelopes), "sqlstate": sqlstate(exc),
                            "reason": "contention" if is_contention(exc) else type(exc).__name__})
            return False
        return True

    def _superseded(self, envelopes: list[EventEnvelope]) -> set[uuid.UUID]:
        """The events of this batch that a later event of the same `latest_only` topic and entity replaces. One
        entity's events share a key, hence a partition, so the batch holds them oldest first. An event whose
        entity field is missing or not an id is never skipped (its handler reports it)."""
        if not self.latest_only:
            return set()
        newest: dict[tuple[str, str | int], str] = {}
        keyed: list[tuple[tuple[str, str | int], str]] = []
        seen: set[str] = set()
        for envelope in envelopes:
            if envelope.event_id in seen:
                continue  # a redelivered copy keeps its first place: it is not newer than what followed it
            seen.add(envelope.event_id)
            field = self.latest_only.get(envelope.event_type)
            entity = envelope.payload.get(field) if field is not None else None
            if isinstance(entity, str | int) and not isinstance(entity, bool):
                key = (envelope.event_type, entity)
                newest[key] = envelope.event_id
                keyed.append((key, envelope.event_id))
        return {uuid.UUID(event_id) for key, event_id in keyed if newest[key] != event_id}

    async def _record_in_inbox(self, session: AsyncSession, envelopes: list[EventEnvelope]) -> set[uuid.UUID]:
        """The ids of these events this consumer sees for the first time (empty for redeliveries), recorded in
        ONE statement however many there are (a round trip per event was a tenth of a batch's statements)."""
        inserted = await session.execute(
            text(f"INSERT INTO {self.schema}.inbox (consumer, event_id) "
                 f"SELECT :c, e FROM unnest(CAST(:ids AS uuid[])) AS e ON CONFLICT DO NOTHING RETURNING event_id"),
            {"c": self.name, "ids": [e.event_id for e in envelopes]})
        return {row[0] for row in inserted}

    async def process(self, record: ConsumerRecord) -> str:
        """Apply one record. Returns 'applied', 'duplicate' or 'dead-lettered'."""
        try:
            envelope = EventEnvelope.from_json(record.value)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            await self._dead_letter(record, f"undecodable envelope: {exc}")
            return "dead-lettered"
        correlation_id_var.set(envelope.correlation_id)
        attempt = 0
        contended = 0
        outage_wait = max(0.05, self.backoff_base_seconds)
        while True:
            try:
                # Each try in its own span (a no-op while tracing is off), the child of the producer's trace.
                with consumer_span(record, self.name):
                    return await self._apply_once(envelope)
            except Exception as exc:  # any handler failure is retried, then parked
                if is_outage(exc):
                    # Postgres or Redis is restarting: wait for it, however long, without spending an attempt.
                    log.warning("a peer is unavailable; retrying the event when it is back",
                                extra={"event_id": envelope.event_id, "consumer": self.name,
                                       "error": type(exc).__name__, "retry_in": outage_wait})
                    await asyncio.sleep(outage_wait)  # backoff while the peer is away
                    outage_wait = min(OUTAGE_BACKOFF_CAP_SECONDS, outage_wait * 2)
                    continue
                if is_contention(exc) and contended < CONTENTION_RETRIES:
                    # Another worker's transaction held rows this one needed (and the other way round): Postgres
                    # chose this one to roll back. Run it again after a short, growing pause.
                    contended += 1
                    log.info("event lost to a concurrent transaction; applying it again",
                             extra={"event_id": envelope.event_id, "consumer": self.name, "sqlstate": sqlstate(exc)})
                    await asyncio.sleep(0.01 * 2 ** min(contended, 6))  # let the winning transaction finish
                    continue
                attempt += 1
                if attempt >= self.max_attempts:
                    log.exception("event failed; parking on DLQ",
                                  extra={"event_id": envelope.event_id, "consumer": self.name})
                    await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                    return "dead-lettered"
                delay = self.backoff_base_seconds * (2 ** (attempt - 1))
                log.warning("event failed; retrying", extra={"event_id": envelope.event_id, "consumer": self.name,
                                                             "attempt": attempt, "retry_in": delay})
                await asyncio.sleep(delay)  # backoff between retries of a failing handler

    async def _apply_once(self, envelope: EventEnvelope) -> str:
        # Committed (then its after-commit callbacks run) or, when anything raises, rolled back with them dropped.
        async with unit_of_work(self.session_factory) as session:
            if not await self._record_in_inbox(session, [envelope]):
                return "duplicate"
            await self.handler(session, envelope)
        return "applied"

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        headers = [("source-topic", record.topic.encode()), ("consumer", self.name.encode()),
                   ("error", reason[:500].encode())]
        await self.dlq_producer.send_and_wait(DLQ_TOPIC, record.value, key=record.key, headers=headers)
