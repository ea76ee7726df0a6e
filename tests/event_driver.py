"""Drives a domain's consumer group in tests as the worker runs it: each event goes through the kernel's
IdempotentConsumer (inbox and dead-lettering included) into the group's handler, with no broker in between. What the
consumer would park on the DLQ is recorded in `dead_letters` instead of being produced to Kafka."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.consumer import ConsumerSpec, IdempotentConsumer, WorkerResources
from kernel.events import EventEnvelope
from tests.event_contracts import as_consumed

DeadLetter = tuple[str, bytes, dict[str, Any]]


class RecordingDLQ:
    """Stands in for the DLQ producer: keeps the topic, value and send arguments of each parked event."""

    def __init__(self) -> None:
        self.parked: list[DeadLetter] = []

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: Any) -> None:
        self.parked.append((topic, value, kwargs))


class EventDriver:
    """Delivers events to one consumer spec's handler through the kernel's IdempotentConsumer, one attempt each
    (a failing event is dead-lettered at once, so a test sees it without waiting for backoffs).

    `check_contract`: every payload delivered without its own envelope must first round-trip through its topic's
    contract (tests/event_contracts.py), so a test cannot feed the handler something no producer writes. Off
    where a test builds its payloads from contract-checked builders or delivers malformed ones on purpose."""

    def __init__(self, resources: WorkerResources, spec: ConsumerSpec, *, check_contract: bool = False) -> None:
        self.resources = resources
        self.spec = spec
        self.check_contract = check_contract
        self._dlq = RecordingDLQ()
        self.consumer = IdempotentConsumer(name=spec.name, schema=spec.schema, consumer=None,
                                           dlq_producer=self._dlq, session_factory=resources.session_factory,
                                           handler=spec.handler, max_attempts=1)

    @classmethod
    def for_group(cls, resources: WorkerResources,
                  consumer_specs: Callable[[WorkerResources], Iterable[ConsumerSpec]], name: str | None = None, *,
                  check_contract: bool = False) -> EventDriver:
        """The driver of the group `name` among a domain's `consumer_specs`; without a name, of its only group."""
        specs = list(consumer_specs(resources))
        if name is None:
            (spec,) = specs
        else:
            spec = next(s for s in specs if s.name == name)
        return cls(resources, spec, check_contract=check_contract)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return self._dlq.parked

    async def deliver(self, event_type: str, payload: dict[str, Any], *,
                      envelope: EventEnvelope | None = None) -> str:
        """'applied', 'duplicate' (the inbox knew the envelope) or 'dead-lettered'."""
        if envelope is None:
            envelope = EventEnvelope.new(event_type, as_consumed(event_type, payload) if self.check_contract
                                         else payload)
        record = SimpleNamespace(value=envelope.to_json(), topic=event_type, key=None)
        return await self.consumer.process(record)


async def apply_interleaved(spec: ConsumerSpec, session_factory: async_sessionmaker[AsyncSession],
                            batches: dict[str, list[EventEnvelope]]) -> list[bool]:
    """Two workers (the two keys of `batches`) apply their batch of `spec`'s group at the same time, each in one
    transaction. Once both batches are under way, each batch's first event waits until the other's first is done
    before either takes its second: the interleaving that deadlocks when every event locks its rows only as it is
    applied. One bool per batch: True when it committed whole, False when it was rolled back (as a deadlock
    victim is) to be applied one event at a time."""
    first, second = batches
    prepared: set[str] = set()
    first_done = {name: asyncio.Event() for name in batches}

    def worker(name: str) -> IdempotentConsumer:
        other = second if name == first else first

        async def prepare(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
            await spec.prepare_batch(session, envelopes)
            prepared.add(name)

        async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
            await spec.handler(session, envelope)
            if not first_done[name].is_set():
                first_done[name].set()
                if other in prepared:
                    await first_done[other].wait()

        return IdempotentConsumer(name=spec.name, schema=spec.schema, consumer=None, dlq_producer=None,
                                  session_factory=session_factory, handler=handle, prepare_batch=prepare,
                                  max_attempts=1)

    return list(await asyncio.gather(*(worker(name)._apply_together(as_records(batches[name])) for name in batches)))


async def apply_as_one_batch(spec: ConsumerSpec, session_factory: async_sessionmaker[AsyncSession],
                             envelopes: list[EventEnvelope], *,
                             after_first: Callable[[], Awaitable[Any]] | None = None) -> bool:
    """`spec`'s group applies `envelopes` in one transaction, as a worker applies a fetched batch (its
    before_batch included). `after_first` is awaited once the first event is applied, while the batch's
    transaction is still open. True when the batch committed whole, False when it was rolled back to be applied
    one event at a time."""
    pending = [after_first] if after_first is not None else []

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        await spec.handler(session, envelope)
        if pending:
            await pending.pop()()

    consumer = IdempotentConsumer(name=spec.name, schema=spec.schema, consumer=None, dlq_producer=None,
                                  session_factory=session_factory, handler=handle,
                                  prepare_batch=spec.prepare_batch, max_attempts=1)
    return await consumer._apply_together(as_records(envelopes))


def as_records(envelopes: list[EventEnvelope]) -> list[Any]:
    """The envelopes as the broker hands them to a consumer (topic, key, value)."""
    return [SimpleNamespace(topic=e.event_type, key=None, value=e.to_json()) for e in envelopes]
