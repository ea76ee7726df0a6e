from __future__ import annotations

from redis.asyncio import Redis


async def drop_catalog_keys(redis: Redis) -> None:
    """Empty the catalog's cache (what a Redis flush or eviction does to it) without touching other keys."""
    keys = [key async for key in redis.scan_iter(match="catalog:*", count=1000)]
    if keys:
        await redis.delete(*keys)
