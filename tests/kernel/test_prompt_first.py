"""PromptFirst: in a worker, the groups a shopper waits for apply their batches before the projections do,
and the projections are never starved."""
from __future__ import annotations

import asyncio
import time
import types
from typing import Any

from kernel.consumer import IdempotentConsumer, PromptFirst


async def test_a_background_batch_waits_while_a_prompt_batch_is_applied() -> None:
    gate = PromptFirst(quiet_seconds=0.01, max_defer_seconds=60)
    order: list[str] = []

    async def background() -> None:
        await gate.background_turn()
        order.append("background")

    with gate.prompt_work():
        waiting = asyncio.create_task(background())
        for _ in range(20):
            await asyncio.sleep(0)  # let the background task run as far as it can
        order.append("prompt done")
    await asyncio.wait_for(waiting, 5)
    assert order == ["prompt done", "background"]


async def test_a_background_batch_goes_at_once_when_no_prompt_group_is_busy() -> None:
    gate = PromptFirst(quiet_seconds=0.01, max_defer_seconds=60)
    await asyncio.wait_for(gate.background_turn(), 5)


async def test_a_background_batch_is_not_starved_by_prompt_groups_that_are_always_busy() -> None:
    gate = PromptFirst(quiet_seconds=0.01, max_defer_seconds=0.1)
    with gate.prompt_work():  # busy for longer than the longest deferral
        await asyncio.wait_for(gate.background_turn(), 5)


async def test_a_batch_already_as_old_as_the_limit_goes_at_once_even_while_a_prompt_group_is_busy() -> None:
    gate = PromptFirst(quiet_seconds=0.01, max_defer_seconds=60)
    produced_a_minute_ago = int((time.time() - 61) * 1000)
    with gate.prompt_work():
        await asyncio.wait_for(gate.background_turn(produced_a_minute_ago), 5)


def background_consumer(gate: PromptFirst, applied: list[str]) -> IdempotentConsumer:
    consumer = IdempotentConsumer(name="projection", schema="unused", consumer=None, dlq_producer=None,
                                  session_factory=None, handler=None, transaction_batch=1,  # type: ignore[arg-type]
                                  priority=gate, prompt=False)

    async def process(record: Any) -> str:
        applied.append(record.value)
        return "applied"

    consumer.process = process  # type: ignore[method-assign]
    return consumer


def batch_produced(seconds_ago: float) -> dict[str, list[Any]]:
    produced = int((time.time() - seconds_ago) * 1000)
    return {"tp": [types.SimpleNamespace(topic="t", key=b"k", value="event", timestamp=produced)]}


async def test_a_background_consumer_applies_nothing_while_a_prompt_batch_is_in_progress() -> None:
    gate = PromptFirst(quiet_seconds=0.01, max_defer_seconds=60)
    applied: list[str] = []
    consumer = background_consumer(gate, applied)
    with gate.prompt_work():
        deferred = asyncio.create_task(consumer._apply_batches(batch_produced(0)))
        for _ in range(20):
            await asyncio.sleep(0)  # let the background consumer run as far as it can
        assert applied == [], "the projection's handler ran during the saga's batch"
    await asyncio.wait_for(deferred, 5)
    assert applied == ["event"]


async def test_a_background_backlog_older_than_the_limit_is_applied_while_prompt_groups_stay_busy() -> None:
    gate = PromptFirst(quiet_seconds=0.01, max_defer_seconds=60)
    applied: list[str] = []
    consumer = background_consumer(gate, applied)
    with gate.prompt_work():
        await asyncio.wait_for(consumer._apply_batches(batch_produced(61)), 5)
    assert applied == ["event"]
