"""PromptFirst: in a worker, the groups a shopper waits for apply their batches before the projections do,
and the projections are never starved."""
from __future__ import annotations

import asyncio

from kernel.consumer import PromptFirst


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
