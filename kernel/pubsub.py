"""Redis pub/sub for live streams: ONE subscriber connection per process and Redis client, fanned out in
memory to every stream that listens on a channel.

Why: a GraphQL subscription lives as long as its client stays connected. With a pub/sub connection per
stream, a few hundred subscribers of one product exhausted the process's Redis pool (MaxConnectionsError,
seen as INTERNAL_SERVER_ERROR by the subscribers). Here a thousand streams on one channel cost one Redis
subscription and one socket.

Use it as `async with listen(redis, channel) as messages:`. Entering returns only once Redis has confirmed
the subscription, so a caller that subscribes and then reads the current state misses no change committed
after that read. `await messages.get(within_seconds)` (or `async for data in messages`) gives each published
payload; `MAYBE_MISSED` means messages may have been lost (Redis reconnect, or a listener too slow to keep
up), so the listener must re-read the truth rather than trust a sequence of messages.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

MAYBE_MISSED: Final = b""  # never a real payload: every publisher in this project sends a non-empty one
_QUEUE_LIMIT = 256  # per listener; a listener this far behind gets MAYBE_MISSED instead of a backlog
_SUBSCRIBE_TIMEOUT_SECONDS = 10.0


class Listener:
    """One stream's view of a channel."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_QUEUE_LIMIT)

    def _deliver(self, data: bytes) -> None:
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            # Too slow to keep up: drop the backlog and say so; the listener re-reads the truth.
            self.drain()
            self._queue.put_nowait(MAYBE_MISSED)

    async def get(self, within_seconds: float) -> bytes | None:
        """The next payload, or None when `within_seconds` pass without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), within_seconds)
        except TimeoutError:
            return None

    def drain(self) -> None:
        """Discards what is waiting (a coalescing listener re-reads the state instead)."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def newest(self, since: bytes) -> bytes:
        """Takes everything waiting and returns the newest payload, `since` (a payload already taken) if
        nothing is waiting. MAYBE_MISSED if `since` or anything taken was MAYBE_MISSED: a coalescing listener
        whose publishers send the whole state uses the newest one and re-reads only after a possible loss."""
        newest, missed = since, since == MAYBE_MISSED
        while not self._queue.empty():
            newest = self._queue.get_nowait()
            missed = missed or newest == MAYBE_MISSED
        return MAYBE_MISSED if missed else newest

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            yield await self._queue.get()


class _Channel:
    def __init__(self) -> None:
        self.listeners: set[Listener] = set()
        self.confirmed = asyncio.Event()


class _Hub:
    """The process's one pub/sub connection for a Redis client, and the reader that fans messages out."""

    def __init__(self, redis: Redis) -> None:
        self._pubsub: Any = redis.pubsub()
        self._channels: dict[str, _Channel] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one SUBSCRIBE/UNSUBSCRIBE command at a time

    async def add(self, channel: str, listener: Listener) -> None:
        async with self._lock:
            state = self._channels.get(channel)
            if state is None:
                state = self._channels[channel] = _Channel()
                await self._pubsub.subscribe(channel)
            state.listeners.add(listener)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="redis-pubsub-reader")
        await asyncio.wait_for(state.confirmed.wait(), _SUBSCRIBE_TIMEOUT_SECONDS)

    async def remove(self, channel: str, listener: Listener) -> None:
        async with self._lock:
            state = self._channels.get(channel)
            if state is None:
                return
            state.listeners.discard(listener)
            if not state.listeners:
                del self._channels[channel]
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while self._channels:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("redis pub/sub connection lost (%s); resubscribing", type(exc).__name__)
                await asyncio.sleep(0.5)
                await self._resubscribe()
                continue
            if message is None:
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            state = self._channels.get(channel)
            if state is None:
                continue
            if message["type"] == "subscribe":
                state.confirmed.set()
            elif message["type"] == "message":
                data = message["data"]
                payload = data if isinstance(data, bytes) else str(data).encode()
                for listener in tuple(state.listeners):
                    listener._deliver(payload)  # noqa: SLF001 - the hub is the listener's only producer

    async def _resubscribe(self) -> None:
        async with self._lock:
            channels = list(self._channels)
            try:
                await self._pubsub.aclose()
                if channels:
                    await self._pubsub.subscribe(*channels)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                return  # still down: the reader's next read fails again and retries
            # Whatever was published while the connection was down is lost: tell every listener.
            for state in self._channels.values():
                for listener in state.listeners:
                    listener._deliver(MAYBE_MISSED)  # noqa: SLF001 - the hub is the listener's only producer


_hubs: weakref.WeakKeyDictionary[Redis, _Hub] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def listen(redis: Redis, channel: str) -> AsyncIterator[Listener]:
    """Messages published on `channel` from the moment Redis confirms the subscription until exit."""
    hub = _hubs.get(redis)
    if hub is None:
        hub = _hubs[redis] = _Hub(redis)
    listener = Listener()
    try:
        await hub.add(channel, listener)
        yield listener
    finally:
        await hub.remove(channel, listener)
