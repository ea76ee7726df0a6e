"""What the request path reads from Redis, kept there by trackInteraction and the consumers so that a
recommendation costs two Redis round trips and no SQL:

    recs:recent:<subject>   list   the subject's latest product ids, newest first (LPUSH + LTRIM)
    recs:bought:<user id>   zset   products the user bought -> when (epoch seconds): never recommended to them
                                   for RECOMMENDATIONS_BOUGHT_EXCLUSION_DAYS
    recs:cards              hash   product id -> its card (JSON: slug, name, brand, price, currency), for exactly
                                   the products that may be recommended: sold (not deleted), in stock, with a card
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

import orjson
from redis.asyncio import Redis

from subgraphs.recommendations.models import ProductCard

RECENT_KEEP = 50
RECENT_TTL_SECONDS = 30 * 24 * 3600
CARDS_KEY = "recs:cards"


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


async def stored_cards(redis: Redis, product_ids: Sequence[int]) -> dict[int, bytes | str]:
    """One round trip: which of these products may be recommended, each with its card as stored (parse_card reads
    one; a caller parses only the ones it shows)."""
    if not product_ids:
        return {}
    raw_cards = await redis.hmget(CARDS_KEY, [str(p) for p in product_ids])
    return {p: raw for p, raw in zip(product_ids, raw_cards, strict=True) if raw is not None}


async def set_card(redis: Redis, product_id: int, card: ProductCard | None) -> None:
    """The product may be recommended with this card; None: it may not."""
    if card is not None:
        await redis.hset(CARDS_KEY, str(product_id), _card_json(card))
    else:
        await redis.hdel(CARDS_KEY, str(product_id))


async def replace_cards(redis: Redis, cards: dict[int, ProductCard]) -> None:
    """The whole hash from the projection (Postgres): what the consumers keep, rebuilt should Redis lose it."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(CARDS_KEY)
        if cards:
            pipe.hset(CARDS_KEY, mapping={str(p): _card_json(card) for p, card in cards.items()})
        await pipe.execute()


def _card_json(card: ProductCard) -> bytes:
    return orjson.dumps({"slug": card.slug, "name": card.name, "brand": card.brand,
                         "price": str(card.min_price), "currency": card.currency})


def parse_card(raw: bytes | str) -> ProductCard:
    fields = orjson.loads(raw)
    return ProductCard(slug=fields["slug"], name=fields["name"], brand=fields["brand"],
                       min_price=Decimal(fields["price"]), currency=fields["currency"])
