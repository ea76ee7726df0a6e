"""What the request path reads from Redis, kept there by trackInteraction and the consumers so that a
recommendation costs two Redis round trips and no SQL:

    recs:recent:<subject>   list   the subject's latest product ids, newest first (LPUSH + LTRIM)
    recs:bought:<user id>   zset   products the user bought -> when (epoch seconds): never recommended to them
                                   for RECOMMENDATIONS_BOUGHT_EXCLUSION_DAYS
    recs:available          set    products that may be recommended: sold (not deleted) and in stock
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from redis.asyncio import Redis

RECENT_KEEP = 50
RECENT_TTL_SECONDS = 30 * 24 * 3600
AVAILABLE_KEY = "recs:available"


def recent_key(subject: str) -> str:
    return f"recs:recent:{subject}"


def bought_key(user_id: int) -> str:
    return f"recs:bought:{user_id}"


def user_subject(user_id: int) -> str:
    return f"user:{user_id}"


def session_subject(session_id: str) -> str:
    return f"session:{session_id}"


async def push_recent(redis: Redis, subject: str, product_id: int) -> None:
    """One round trip: the product becomes the subject's newest (an earlier mention of it is dropped)."""
    key = recent_key(subject)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lrem(key, 0, str(product_id))
        pipe.lpush(key, product_id)
        pipe.ltrim(key, 0, RECENT_KEEP - 1)
        pipe.expire(key, RECENT_TTL_SECONDS)
        await pipe.execute()


async def read_shopper(redis: Redis, subjects: Sequence[str], user_id: int | None,
                       bought_window_seconds: float) -> tuple[list[int], set[int]]:
    """One round trip: the subjects' recent products, oldest first and newest last (the first subject's first
    when they repeat), and what the user bought within the window."""
    async with redis.pipeline(transaction=False) as pipe:
        for subject in subjects:
            pipe.lrange(recent_key(subject), 0, RECENT_KEEP - 1)
        if user_id is not None:
            pipe.zrangebyscore(bought_key(user_id), time.time() - bought_window_seconds, "+inf")
        replies = await pipe.execute()
    newest_first: list[int] = []
    seen: set[int] = set()
    for reply in replies[:len(subjects)]:
        for raw in reply:
            product_id = int(raw)
            if product_id not in seen:
                seen.add(product_id)
                newest_first.append(product_id)
    bought = {int(raw) for raw in replies[len(subjects)]} if user_id is not None else set()
    return newest_first[::-1], bought


async def mark_bought(redis: Redis, user_id: int, product_ids: Sequence[int], window_seconds: float) -> None:
    if not product_ids:
        return
    key, now = bought_key(user_id), time.time()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {str(p): now for p in product_ids})
        pipe.zremrangebyscore(key, "-inf", now - window_seconds)
        pipe.expire(key, int(window_seconds) + 60)
        await pipe.execute()


async def available_among(redis: Redis, product_ids: Sequence[int]) -> set[int]:
    """One round trip: which of these may be recommended."""
    if not product_ids:
        return set()
    flags = await redis.smismember(AVAILABLE_KEY, [str(p) for p in product_ids])
    return {p for p, flag in zip(product_ids, flags, strict=True) if flag}


async def set_available(redis: Redis, product_id: int, available: bool) -> None:
    if available:
        await redis.sadd(AVAILABLE_KEY, str(product_id))
    else:
        await redis.srem(AVAILABLE_KEY, str(product_id))


async def replace_available(redis: Redis, product_ids: Sequence[int]) -> None:
    """The whole set from the projection (Postgres): what the consumers keep, rebuilt should Redis lose it."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(AVAILABLE_KEY)
        if product_ids:
            pipe.sadd(AVAILABLE_KEY, *[str(p) for p in product_ids])
        await pipe.execute()
