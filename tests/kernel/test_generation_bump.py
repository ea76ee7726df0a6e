"""A write invalidates its domain's cached reads once its transaction has committed, and once per transaction:
a consumer batch of twenty stock changes bumps inventory's generation once, not twenty times."""
from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.db import create_session_factory
from kernel.response_cache import Generation
from kernel.uow import unit_of_work


async def test_a_transaction_bumps_each_generation_once_after_its_commit(service_engine: AsyncEngine,
                                                                          redis: Redis) -> None:
    stock, users = Generation(f"t-{uuid.uuid4().hex[:8]}"), Generation(f"t-{uuid.uuid4().hex[:8]}")
    before = (await stock.current(redis), await users.current(redis))
    seen_inside: list[int] = []

    async with unit_of_work(create_session_factory(service_engine)) as session:
        await session.execute(text("SELECT 1"))
        for _ in range(20):
            stock.bump_after_commit(session, redis)
        users.bump_after_commit(session, redis)
        seen_inside.append(await stock.current(redis))

    assert seen_inside == [before[0]]  # nothing moves before the commit
    assert await stock.current(redis) == before[0] + 1  # twenty writes, one bump
    assert await users.current(redis) == before[1] + 1  # another generation is bumped on its own


async def test_a_rolled_back_transaction_bumps_nothing(service_engine: AsyncEngine, redis: Redis) -> None:
    stock = Generation(f"t-{uuid.uuid4().hex[:8]}")
    before = await stock.current(redis)

    async def failing_write() -> None:
        async with unit_of_work(create_session_factory(service_engine)) as session:
            stock.bump_after_commit(session, redis)
            raise RuntimeError("the write failed")

    with pytest.raises(RuntimeError):
        await failing_write()

    assert await stock.current(redis) == before
