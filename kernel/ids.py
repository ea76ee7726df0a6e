"""Snowflake ids: 41 bits of milliseconds since the NexusCart epoch, 10 bits of node id, 12 bits of sequence.

Ids are roughly time-ordered (good for B-tree locality and keyset pagination) and unique across
processes as long as each process has its own node id (`NODE_ID`; the launcher assigns them).
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, TypeGuard

from kernel.errors import BadUserInput

if TYPE_CHECKING:
    from redis.asyncio import Redis

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_NODE_BITS = 10
_SEQ_BITS = 12
_MAX_SEQ = (1 << _SEQ_BITS) - 1


class SnowflakeGenerator:
    def __init__(self, node_id: int) -> None:
        if not 0 <= node_id < (1 << _NODE_BITS):
            raise ValueError(f"node_id must be in 0..{(1 << _NODE_BITS) - 1}")
        self._node_id = node_id
        self._last_ms = -1
        self._seq = 0
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            now = int(time.time() * 1000)
            if now < self._last_ms:
                now = self._last_ms  # clock went backwards: keep monotonic, borrow from the sequence
            if now == self._last_ms:
                self._seq = (self._seq + 1) & _MAX_SEQ
                if self._seq == 0:
                    while now <= self._last_ms:  # sequence exhausted in this millisecond
                        now = int(time.time() * 1000)
            else:
                self._seq = 0
            self._last_ms = now
            return ((now - EPOCH_MS) << (_NODE_BITS + _SEQ_BITS)) | (self._node_id << _SEQ_BITS) | self._seq


def snowflake_timestamp_ms(snowflake: int) -> int:
    return (snowflake >> (_NODE_BITS + _SEQ_BITS)) + EPOCH_MS


_generator: SnowflakeGenerator | None = None


def configure(node_id: int) -> None:
    """Set this process's node id (claimed from Redis at start-up, see kernel.app)."""
    global _generator
    _generator = SnowflakeGenerator(node_id)


def next_id() -> int:
    global _generator
    if _generator is None:
        from kernel.settings import get_settings
        _generator = SnowflakeGenerator(get_settings().node_id)
    return _generator.next_id()


NODE_LEASE_SECONDS = 60


async def claim_node_id(redis: Redis) -> tuple[int, str]:
    """Lease a node id no running process holds: `SET NX` with a TTL the holder keeps renewing
    (`renew_node_lease`), so a crashed process frees its id and a restart loop never wraps onto a live one.
    Node 0 stays out of the pool: it is the default of short-lived tools that claim nothing."""
    start = int(await redis.incr("kernel:snowflake-node:cursor"))
    for offset in range(1, 1 << _NODE_BITS):
        candidate = 1 + (start + offset) % ((1 << _NODE_BITS) - 1)
        key = f"kernel:snowflake-node:{candidate}"
        if await redis.set(key, "1", nx=True, ex=NODE_LEASE_SECONDS):
            configure(candidate)
            return candidate, key
    raise RuntimeError("all 1023 Snowflake node ids are leased; too many processes share this Redis")


async def renew_node_lease(redis: Redis, key: str) -> None:
    while True:
        await asyncio.sleep(NODE_LEASE_SECONDS / 3)  # renew well inside the lease
        await redis.expire(key, NODE_LEASE_SECONDS)


MAX_ID = (1 << 63) - 1  # ids are Postgres bigint


def is_valid_id(value: object) -> TypeGuard[int]:
    """A stored id: an int in 1..MAX_ID (bool is not an id)."""
    return type(value) is int and 0 < value <= MAX_ID


def as_id(value: object) -> int | None:
    """`value` (an int or its decimal string) as an id, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        parsed = int(value)
    except ValueError:
        return None
    return parsed if is_valid_id(parsed) else None


def parse_id(value: object, *, field: str = "id") -> int:
    """Parse a client-supplied ID; anything that is not a positive 63-bit integer is BAD_USER_INPUT."""
    parsed = as_id(value)
    if parsed is None:
        raise BadUserInput(f"'{field}' is not a valid id", field=field)
    return parsed


def entity_key(value: object) -> int | None:
    """An entity key the router passes in a federation representation. Garbage resolves to None, so the
    entity is null like an unknown id, rather than failing the whole `_entities` fetch."""
    return as_id(value)
