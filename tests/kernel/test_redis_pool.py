"""kernel.redis: a burst of more concurrent commands than the pool has connections waits for a connection
instead of failing, against the real Redis."""
from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from kernel.redis import POOL_CONNECTIONS, create_redis
from kernel.settings import Settings


async def test_four_times_more_concurrent_commands_than_pooled_connections_all_succeed(
        redis: Redis, settings: Settings) -> None:
    key = f"test:pool:{uuid.uuid4().hex}"
    await redis.set(key, "stock")
    client = create_redis(settings)
    try:
        answers = await asyncio.gather(*(client.get(key) for _ in range(4 * POOL_CONNECTIONS)))
        assert answers == [b"stock"] * (4 * POOL_CONNECTIONS)
    finally:
        await client.aclose()
        await redis.delete(key)
