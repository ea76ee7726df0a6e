"""What the router reads from Redis on every request that carries an X-Api-Key (router/partners.mjs), and the
usage counters it writes there. Redis is the router's only source on the hot path: the key's record is written
here whenever a key is created or revoked, and re-written from Postgres when the router finds it missing
(internal.py). Keep the key names and the JSON shape in step with router/partners.mjs.

  nexuscart:partners:key:<sha256 hex of the secret>   JSON {id, name, scopes, persistedOnly,
                                                      rateLimitPerMinute, revoked}; {"unknown": true} for a
                                                      hash no key has (60 s, so a flood of bad keys does not
                                                      reach Postgres)
  nexuscart:partners:usage:<key id>:<YYYY-MM-DD>      hash {requests, errors, cost}, per UTC day (router)
  nexuscart:partners:last-used                        hash {<key id>: epoch ms} (router)
"""
from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import orjson
from redis.asyncio import Redis

from subgraphs.partners.models import ApiKeyRecord

_KEY_PREFIX = "nexuscart:partners:key:"
_USAGE_PREFIX = "nexuscart:partners:usage:"
LAST_USED = "nexuscart:partners:last-used"
UNKNOWN_TTL_SECONDS = 60


def record_json(key: ApiKeyRecord) -> bytes:
    return orjson.dumps({"id": str(key.id), "name": key.name, "scopes": list(key.scopes),
                         "persistedOnly": key.persisted_only, "rateLimitPerMinute": key.rate_limit_per_minute,
                         "revoked": key.revoked_at is not None})


async def publish(redis: Redis, key: ApiKeyRecord) -> None:
    await redis.set(_KEY_PREFIX + key.secret_hash, record_json(key))


async def publish_unknown(redis: Redis, secret_hash: str) -> None:
    # NX: a key created meanwhile must not be hidden by this negative entry.
    await redis.set(_KEY_PREFIX + secret_hash, b'{"unknown":true}', ex=UNKNOWN_TTL_SECONDS, nx=True)


@dataclasses.dataclass(frozen=True, slots=True)
class UsageDay:
    day: date
    requests: int
    errors: int
    cost: int


async def usage(redis: Redis, key_id: int, days: list[date]) -> list[UsageDay]:
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hmget(f"{_USAGE_PREFIX}{key_id}:{day.isoformat()}", "requests", "errors", "cost")
        replies = await pipe.execute()
    return [UsageDay(day, *(int(v) if v is not None else 0 for v in reply)) for day, reply in zip(days, replies,
                                                                                                   strict=True)]


async def last_used(redis: Redis, key_ids: list[int]) -> dict[int, datetime]:
    if not key_ids:
        return {}
    values = await redis.hmget(LAST_USED, [str(i) for i in key_ids])
    return {key_id: datetime.fromtimestamp(int(v) / 1000, tz=UTC)
            for key_id, v in zip(key_ids, values, strict=True) if v is not None}
