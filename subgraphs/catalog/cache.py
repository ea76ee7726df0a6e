"""Redis cache-aside for catalog reads.

Keys
  catalog:gen                       catalog generation; bumped (INCR) after every committed catalog write
  catalog:product:{id}              one orjson document per product: its row, its variants, its category id
  catalog:page:{gen}:{digest}       one browse page: product ids, cursors, totalCount, hasNextPage
  catalog:categories:{gen}          every category, one blob
  catalog:response:{gen}:{digest}   a whole GraphQL query result (kernel/response_cache.py)
  catalog:variant:{id} / catalog:slug:{slug}   -> product id (immutable mappings: a variant never changes
                                    product, a slug is never changed or reused)

Consistency (why a reader never keeps a value older than a committed write):
  Writers commit, THEN run `invalidate` = one MULTI of INCR catalog:gen + DEL catalog:product:{ids}.
  Pages and the category blob are keyed by generation, so once the INCR lands nobody reads the old ones.
  Product documents are keyed by id; the hazard is a reader that loaded the OLD row from Postgres before
  the commit and writes it to Redis after the DEL. Readers therefore remember the generation they saw
  (read in the same MGET as the documents) and store misses with a Lua script that writes only if
  catalog:gen is still that value. A reader's store lands either before the writer's MULTI (and is
  deleted by it) or after (and is refused, the generation moved). No stale window beyond the instant
  between COMMIT and the MULTI; the TTL only bounds memory.
  Writers also invalidate right after their flush (service.py): useless for correctness, but it empties the
  keys early, and a process that dies between commit and the post-commit call then leaves at most
  the TTL of staleness, never a stale page (those are generation-keyed and the generation moved).

The generation is a kernel `Generation`: re-seeded randomly when missing, never restarting small.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from kernel.redis import lua_script, reply_bytes
from kernel.response_cache import Generation

GENERATION = Generation("catalog")
GEN_KEY = GENERATION.key

_SET_IF_GEN_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = ARGV[2]
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl) end
return 1
"""

def product_key(product_id: int) -> str:
    return f"catalog:product:{product_id}"


def variant_key(variant_id: int) -> str:
    return f"catalog:variant:{variant_id}"


def slug_key(slug: str) -> str:
    return f"catalog:slug:{slug}"


def page_key(generation: int, digest: str) -> str:
    return f"catalog:page:{generation}:{digest}"


def categories_key(generation: int) -> str:
    return f"catalog:categories:{generation}"


async def generation(redis: Redis) -> int:
    return await GENERATION.current(redis)


def product_changed_channel(product_id: int) -> str:
    return f"catalog:product-changed:{product_id}"


async def invalidate(redis: Redis, product_ids: Iterable[int] = ()) -> int:
    """Bump the generation, drop the given product documents and tell `productUpdated` subscribers
    (one MULTI, after the commit). Returns the new generation."""
    ids = list(product_ids)
    async with redis.pipeline(transaction=True) as pipe:
        GENERATION.bump_in(pipe)
        if ids:
            pipe.delete(*(product_key(p) for p in ids))
        for product_id in ids:
            pipe.publish(product_changed_channel(product_id), b"changed")
        result = await pipe.execute()
    return int(result[0])


async def mget_with_generation(redis: Redis, keys: Sequence[str]) -> tuple[int | None, list[bytes | None]]:
    """The generation and the values in ONE round trip; the generation guards the later store of misses."""
    values = await redis.mget([GEN_KEY, *keys])
    raw_gen = values[0]
    return (int(raw_gen) if raw_gen is not None else None), [v if v is None else reply_bytes(v) for v in values[1:]]


async def store_if_generation(redis: Redis, generation: int | None, items: dict[str, bytes], ttl: int) -> bool:
    """Store `items` only if catalog:gen is still `generation` (see the module docstring)."""
    if not items or generation is None:
        return False
    keys = list(items)
    script = lua_script(redis, _SET_IF_GEN_LUA)
    stored = await script(keys=[GEN_KEY, *keys], args=[generation, ttl, *items.values()], client=redis)
    return bool(stored)


async def get_json(redis: Redis, key: str) -> Any:
    raw = await redis.get(key)
    return orjson.loads(raw) if raw is not None else None


async def set_json(redis: Redis, key: str, value: Any, ttl: int) -> None:
    await redis.set(key, orjson.dumps(value), ex=ttl)


async def mget_ints(redis: Redis, keys: Sequence[str]) -> list[int | None]:
    return [int(v) if v is not None else None for v in await redis.mget(keys)]


async def set_ints(redis: Redis, items: dict[str, int], ttl: int) -> None:
    if items:
        async with redis.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, value, ex=ttl)
            await pipe.execute()
