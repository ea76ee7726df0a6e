"""Generation-versioned caching: a domain's cached reads live under a counter bumped after every committed
write, so one INCR invalidates them all and no reader keeps a value older than a committed write.

`response_cache_extension` caches whole query results. Why: graphql-core spends ~10 us per resolved field
however cheap the resolver, so a 350-field browse page costs ~4 ms of CPU even with every row in Redis; a
hit costs one Redis round trip. A hit skips the resolvers, and with them any authorisation inside them,
so only operations whose root fields are on the subgraph's allowlist are cached, and a resolver whose
answer depends on the caller calls `context.mark_uncacheable()`.

An answer this cache holds (or could hold) is the same for every caller, so it is also marked shared
(`context.mark_shared()`, Cache-Control: public) and the router may keep it too. Not one with a replayed log:
each answer served must be recorded, which only this cache does on a hit.

A hit also skips whatever the resolvers record. Where that record must count every answer served (search logs
every search), a `ReplayedLog` stores the operation's entries with its answer, and every hit appends them to a
Redis stream in the same round trip as the lookup.

The generation never restarts from a small number: a missing key (Redis flushed or evicted) is re-seeded
with a random 48-bit value, so a copy keyed by an old generation can never pass for the current one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import FieldNode, OperationDefinitionNode
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from kernel.graphql import RequestContext
from kernel.redis import lua_script
from kernel.uow import after_commit

_MAX_RESPONSE_BYTES = 512 * 1024

_BUMP_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""
# The generation and the response stored under it in one round trip. It builds a key from a value it read,
# which Redis Cluster would refuse; one Redis (or a hash-tagged key space) is assumed.
_LOOKUP_LUA = """
local g = redis.call('GET', KEYS[1])
if not g then return {false, false} end
return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}
"""
# The same, for answers stored as `<entries as JSON>\n<answer>`: a hit appends each entry to a stream, with the
# request's own fields. KEYS: generation, stream; ARGV: response prefix, digest, stream bound, then the request's
# fields as name, value pairs.
_LOOKUP_AND_REPLAY_LUA = """
local g = redis.call('GET', KEYS[1])
if not g then return {false, false} end
local stored = redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])
if not stored then return {g, false} end
local head_end = string.find(stored, '\\n', 1, true)
for _, entry in ipairs(cjson.decode(string.sub(stored, 1, head_end - 1))) do
  local fields = {}
  for name, value in pairs(entry) do table.insert(fields, name); table.insert(fields, value) end
  for i = 4, #ARGV do table.insert(fields, ARGV[i]) end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
return {g, string.sub(stored, head_end + 1)}
"""


@dataclasses.dataclass(frozen=True)
class ReplayedLog:
    """Stream entries an operation's resolvers record, appended for every answer served, cached or not.

    entries: what this operation recorded (read after it ran; stored with its answer). request_fields: added to
    every entry for this request (read before the lookup, e.g. the caller, so a bad token is refused on a hit
    too). A refused operation (errors) records nothing."""
    stream: str
    max_entries: int
    entries: Callable[[RequestContext], list[dict[str, str]]]
    request_fields: Callable[[RequestContext], dict[str, str]]


class Generation:
    """The version counter of one domain's cached reads: `<namespace>:gen`, responses `<namespace>:response:*`."""

    def __init__(self, namespace: str) -> None:
        self.key = f"{namespace}:gen"
        self.response_prefix = f"{namespace}:response:"

    async def current(self, redis: Redis) -> int:
        raw = await redis.get(self.key)
        if raw is None:
            await redis.set(self.key, secrets.randbits(48), nx=True)
            raw = await redis.get(self.key)
        if raw is None:  # deleted again between the SET and the GET (a flush): the next read sets it anew
            raise RuntimeError(f"{self.key} was deleted while being set")
        return int(raw)

    def bump_in(self, pipe: Pipeline) -> None:
        pipe.eval(_BUMP_LUA, 1, self.key, secrets.randbits(48))

    async def bump(self, redis: Redis) -> int:
        return int(await redis.eval(_BUMP_LUA, 1, self.key, secrets.randbits(48)))

    def bump_after_commit(self, session: AsyncSession, redis: Redis | None) -> None:
        """The one way a write invalidates its domain's cached reads: bump once `session` has committed (never
        before: a reader could cache the old state again), once per transaction however many writes it holds."""
        if redis is not None:
            after_commit(session, lambda: self.bump(redis), once=self.key)

    def response_key(self, generation: int, digest: str) -> str:
        return f"{self.response_prefix}{generation}:{digest}"

    async def lookup_response(self, redis: Redis, digest: str) -> tuple[int | None, bytes | None]:
        raw_gen, blob = await lua_script(redis, _LOOKUP_LUA)(keys=[self.key], args=[self.response_prefix, digest],
                                                             client=redis)
        return (int(raw_gen) if raw_gen is not None else None), blob

    async def lookup_and_replay(self, redis: Redis, digest: str, log: ReplayedLog,
                                fields: dict[str, str]) -> tuple[int | None, bytes | None]:
        """As `lookup_response`, for answers stored with `log`'s entries: a hit appends them to its stream."""
        args: list[Any] = [self.response_prefix, digest, log.max_entries]
        for name, value in fields.items():
            args += [name, value]
        raw_gen, blob = await lua_script(redis, _LOOKUP_AND_REPLAY_LUA)(keys=[self.key, log.stream], args=args,
                                                                       client=redis)
        return (int(raw_gen) if raw_gen is not None else None), blob


def operation_root_fields(execution: Any) -> set[str] | None:
    """Names of the operation's root fields; None when fragments at the root make that unclear."""
    document = execution.graphql_document
    if document is None:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if execution.operation_name:
        operations = [o for o in operations if o.name and o.name.value == execution.operation_name]
    if len(operations) != 1:
        return None
    selections = operations[0].selection_set.selections
    fields = [s for s in selections if isinstance(s, FieldNode)]
    if len(fields) != len(selections):
        return None
    # `__typename` at the root is the same for every caller; the router's response cache adds it to the
    # operations it sends, which must not make an allowlisted operation uncacheable.
    return {f.name.value for f in fields} - {"__typename"}


def response_cache_extension(*, generation: Generation, root_fields: frozenset[str] | None = None,
                             on_generation: Callable[[RequestContext, int], None] | None = None,
                             replayed_log: ReplayedLog | None = None,
                             anonymous_only: bool = False) -> type[SchemaExtension]:
    """A schema extension caching `query` results under `generation`.

    root_fields: the only root fields a cached operation may select (None: any; use it only when every
    query of the subgraph is public). on_generation: told the generation read on a miss (saves a round trip).
    replayed_log: entries the operation records, appended to a stream for every answer served (see above).
    anonymous_only: only requests without credentials use the cache, for a subgraph whose answers may show a
    signed-in caller more than anyone else (their own unpublished review): the lookup comes before any resolver
    could say so, and `mark_uncacheable` only keeps such an answer from being stored.
    """

    class ResponseCacheExtension(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            execution = self.execution_context
            ctx = execution.context
            if not isinstance(ctx, RequestContext) or execution.operation_type != OperationType.QUERY or (
                    anonymous_only and ctx.authorization):
                yield
                return
            if root_fields is not None:
                names = operation_root_fields(execution)
                if names is None or not names <= root_fields:
                    yield
                    return
            try:
                # With a replayed log, its stream is part of the key: an answer stored in another format (without
                # entries, or by an earlier version) is never read as one with entries.
                identity = orjson.dumps([execution.query, execution.operation_name, execution.variables,
                                         *([replayed_log.stream] if replayed_log is not None else [])],
                                        option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:  # variables orjson cannot key (huge ints, deep nesting): no caching
                yield
                return
            digest = hashlib.blake2b(identity, digest_size=16).hexdigest()
            fields = replayed_log.request_fields(ctx) if replayed_log is not None else {}
            if replayed_log is not None:
                current, blob = await generation.lookup_and_replay(ctx.redis, digest, replayed_log, fields)
            else:
                current, blob = await generation.lookup_response(ctx.redis, digest)
            if blob is not None:
                execution.result = GraphQLExecutionResult(data=orjson.loads(blob), errors=None)
                if replayed_log is None:
                    ctx.mark_shared()
                yield
                return
            if current is None:  # first use, or Redis was flushed: seed the counter
                current = await generation.current(ctx.redis)
            if on_generation is not None:
                on_generation(ctx, current)
            yield
            result = execution.result
            if not isinstance(result, GraphQLExecutionResult) or result.errors or result.data is None:
                return  # refused: not stored, and nothing logged
            payload = orjson.dumps(result.data)
            storing = ctx.cacheable and len(payload) <= _MAX_RESPONSE_BYTES
            if replayed_log is None:
                if storing:
                    await ctx.redis.set(generation.response_key(current, digest), payload,
                                        ex=ctx.settings.response_cache_ttl_seconds)
                    ctx.mark_shared()
                return
            entries = replayed_log.entries(ctx)
            async with ctx.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    entry_fields: dict[Any, Any] = {**entry, **fields}
                    pipe.xadd(replayed_log.stream, entry_fields, maxlen=replayed_log.max_entries, approximate=True)
                if storing:
                    pipe.set(generation.response_key(current, digest), orjson.dumps(entries) + b"\n" + payload,
                             ex=ctx.settings.response_cache_ttl_seconds)
                await pipe.execute()

    return ResponseCacheExtension
