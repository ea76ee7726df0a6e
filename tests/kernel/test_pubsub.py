"""kernel.pubsub: every live stream of a process shares one Redis subscription, and a stream is told when
messages may have been lost, against the real Redis."""
from __future__ import annotations

import asyncio
import contextlib
import uuid

from redis.asyncio import Redis

from kernel.pubsub import MAYBE_MISSED, Listener, listen
from kernel.settings import Settings


def _channel() -> str:
    return f"test:pubsub:{uuid.uuid4().hex}"


async def _subscribers(redis: Redis, channel: str) -> int:
    return dict(await redis.pubsub_numsub(channel))[channel.encode()]


async def test_a_thousand_streams_on_one_channel_share_one_redis_subscription_and_all_get_every_message(
        redis: Redis, settings: Settings) -> None:
    shared = Redis.from_url(settings.redis_url, max_connections=8)  # far fewer connections than streams
    channel = _channel()
    try:
        async with contextlib.AsyncExitStack() as stack:
            listeners = [await stack.enter_async_context(listen(shared, channel)) for _ in range(1000)]
            assert await _subscribers(redis, channel) == 1
            for n in range(3):
                await redis.publish(channel, f"change-{n}")
            for listener in listeners:
                assert [await listener.get(within_seconds=5) for _ in range(3)] == [b"change-0", b"change-1",
                                                                                     b"change-2"]
        # The last stream gone, the subscription is gone too.
        assert await _subscribers(redis, channel) == 0
    finally:
        await shared.aclose()


async def test_a_message_published_right_after_listen_returns_is_never_missed(redis: Redis,
                                                                             settings: Settings) -> None:
    shared = Redis.from_url(settings.redis_url)
    try:
        for _ in range(20):
            channel = _channel()
            async with listen(shared, channel) as listener:
                await redis.publish(channel, "first")
                assert await listener.get(within_seconds=5) == b"first"
    finally:
        await shared.aclose()


async def test_a_stream_too_slow_to_keep_up_is_told_it_missed_messages(redis: Redis, settings: Settings) -> None:
    shared = Redis.from_url(settings.redis_url)
    channel = _channel()
    try:
        async with listen(shared, channel) as listener:
            for n in range(1000):
                await redis.publish(channel, f"m{n}")
            received = await _drain(listener)
            assert MAYBE_MISSED in received
            assert received[-1] == b"m999"  # what came after the overflow is still delivered
    finally:
        await shared.aclose()


async def test_after_the_subscription_connection_drops_streams_hear_of_it_and_keep_receiving(
        redis: Redis, settings: Settings) -> None:
    shared = Redis.from_url(settings.redis_url)
    channel = _channel()
    try:
        async with listen(shared, channel) as listener:
            killed = await redis.client_kill_filter(_type="pubsub", skipme=True)
            assert killed >= 1
            assert await listener.get(within_seconds=10) == MAYBE_MISSED
            deadline = asyncio.get_running_loop().time() + 10
            while await _subscribers(redis, channel) == 0:  # resubscribed by the hub's reader
                assert asyncio.get_running_loop().time() < deadline, "never resubscribed"
                await asyncio.sleep(0.05)
            await redis.publish(channel, "after")
            assert await listener.get(within_seconds=5) == b"after"
    finally:
        await shared.aclose()


async def test_a_coalescing_stream_takes_the_newest_message_and_hears_of_a_possible_loss(
        redis: Redis, settings: Settings) -> None:
    shared = Redis.from_url(settings.redis_url)
    channel = _channel()
    try:
        async with listen(shared, channel) as listener:
            for stock in (9, 8, 7, 6):
                await redis.publish(channel, str(stock))
            first = await listener.get(within_seconds=5)
            assert first == b"9"
            newest = listener.newest(since=first)
            deadline = asyncio.get_running_loop().time() + 10
            while newest != b"6":  # the other three arrive in publish order; never an older one after a newer
                assert newest in (b"9", b"8", b"7"), newest
                assert asyncio.get_running_loop().time() < deadline, "the newest message never arrived"
                await asyncio.sleep(0.01)
                newest = listener.newest(since=newest)
            assert listener.newest(since=newest) == b"6"  # nothing new: still the newest taken

    finally:
        await shared.aclose()


def test_newest_reports_a_possible_loss_among_what_it_takes_however_much_came_after() -> None:
    listener = Listener()
    for payload in (b"7", MAYBE_MISSED, b"5", b"4"):
        listener._deliver(payload)  # standing in for the hub, the listener's only producer
    assert listener.newest(since=b"8") == MAYBE_MISSED
    listener._deliver(b"3")
    assert listener.newest(since=b"4") == b"3"
    assert listener.newest(since=MAYBE_MISSED) == MAYBE_MISSED


async def _drain(listener: Listener) -> list[bytes]:
    received: list[bytes] = []
    while (message := await listener.get(within_seconds=1)) is not None:
        received.append(message)
        if message == b"m999":
            break
    return received
