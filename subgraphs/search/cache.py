"""Whole-response cache of the search subgraph, and the query log that still counts every search it answers.

Keys
  search:gen                      the index generation; bumped (INCR) after every committed change of what a
                                  search can answer: a product indexed or removed, a stock change, a rebuild,
                                  a synonym change (kernel/response_cache.Generation: re-seeded randomly if lost)
  search:response:{gen}:{digest}  one `search` / `searchSuggestions` operation's answer, headed by the searches
                                  it logs
  search:query-log                a stream of searches (query, result count, user) the worker drains into
                                  search.query_log (and searchInsights drains first, so insights are exact)

Why: a search with facets resolves ~270 GraphQL values (~10 us each in graphql-core) and runs several
statements; a repeated search costs one Redis round trip instead. The kernel's response cache
(kernel/response_cache.py) cannot log what it serves, and searchInsights must count every search, so this one
appends the search to the query-log stream in the same script that finds the answer.

Not bumped by trackSearchClick: a click's popularity point only breaks relevance ties, and bumping on every
click would empty the cache as fast as shoppers browse; such an order lags by the TTL at most.

Consistency as the kernel's cache: the generation is read before the statements run and the answer is stored
under it, and writers bump it only after their commit, so an answer computed before a commit is never served
after the bump that follows it. A miss also hands its generation to the in-process synonym cache
(`SynonymCache`), which is correct for the same reason.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from kernel.graphql import RequestContext
from kernel.ids import next_id
from kernel.redis import lua_script, reply_text
from kernel.response_cache import Generation, operation_root_fields
from kernel.uow import after_commit
from subgraphs.search import repository

GENERATION = Generation("search")
RESPONSE_PREFIX = "search:response:"
QUERY_LOG_STREAM = "search:query-log"
# Bounds the stream while no worker drains it; far above what one drain interval collects.
QUERY_LOG_MAX_ENTRIES = 1_000_000
DRAIN_BATCH = 5_000
# Only these root fields are cached: public reads whose answer does not depend on the caller.
CACHED_ROOT_FIELDS = frozenset({"search", "searchSuggestions"})
_MAX_RESPONSE_BYTES = 512 * 1024
_INVALIDATION_QUEUED = "search_cache_invalidation_queued"

# A hit's answer and its query-log entries in one round trip. KEYS: generation, stream; ARGV: response prefix,
# digest, user id ('' when anonymous), stream bound. The stored value is `<searches as JSON>\n<answer>`.
# It builds a key from a value it read, which Redis Cluster would refuse; one Redis is assumed, as in the kernel.
_LOOKUP_AND_LOG_LUA = """
local g = redis.call('GET', KEYS[1])
if not g then return {false, false} end
local stored = redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])
if not stored then return {g, false} end
local head_end = string.find(stored, '\\n', 1, true)
for _, logged in ipairs(cjson.decode(string.sub(stored, 1, head_end - 1))) do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'q', logged[1], 'n', logged[2], 'u', ARGV[3])
end
return {g, stored}
"""


@dataclasses.dataclass(frozen=True, slots=True)
class LoggedSearch:
    """One search as the query log records it: the folded query text and how many products it found."""
    query: str
    result_count: int


class OperationCacheState:
    """What the response cache tells the resolvers of one operation (one instance per operation, through
    `RequestContext.loader`): the generation its answer will be stored under, and the searches to log with it.
    `generation` stays None when the operation is not cached; resolvers then log straight to the table."""

    def __init__(self, _context: RequestContext) -> None:
        self.generation: int | None = None
        self.searches: list[LoggedSearch] = []




async def invalidate(redis: Redis) -> None:
    await GENERATION.bump(redis)


def invalidate_after_commit(session: AsyncSession, redis: Redis | None) -> None:
    """Bump the generation once `session` commits; once per transaction, however many changes it holds (the
    consumer applies up to 20 events per transaction)."""
    if redis is None or session.info.get(_INVALIDATION_QUEUED):
        return
    session.info[_INVALIDATION_QUEUED] = True
    after_commit(session, lambda: invalidate(redis))


def _append_searches(pipe: Any, searches: Sequence[LoggedSearch], user: str) -> None:
    for logged in searches:
        pipe.xadd(QUERY_LOG_STREAM, {"q": logged.query, "n": logged.result_count, "u": user},
                  maxlen=QUERY_LOG_MAX_ENTRIES, approximate=True)


class SearchResponseCache(SchemaExtension):
    """Caches `search` / `searchSuggestions` answers under the search generation; logs every search served,
    from the cache or not, to the query-log stream."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        ctx = execution.context
        if not isinstance(ctx, RequestContext) or execution.operation_type != OperationType.QUERY:
            yield
            return
        names = operation_root_fields(execution)
        if names is None or not names <= CACHED_ROOT_FIELDS:
            yield
            return
        try:
            identity = orjson.dumps([execution.query, execution.operation_name, execution.variables],
                                    option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # variables orjson cannot key (huge ints, deep nesting): no caching
            yield
            return
        user = ctx.user  # a bad or expired token is refused here (UNAUTHENTICATED), cached answer or not
        user_field = str(user.user_id) if user is not None else ""
        digest = hashlib.blake2b(identity, digest_size=16).hexdigest()
        raw_generation, stored = await lua_script(ctx.redis, _LOOKUP_AND_LOG_LUA)(
            keys=[GENERATION.key, QUERY_LOG_STREAM],
            args=[RESPONSE_PREFIX, digest, user_field, QUERY_LOG_MAX_ENTRIES],
            client=ctx.redis)
        if stored is not None:
            execution.result = GraphQLExecutionResult(data=orjson.loads(stored[stored.index(b"\n") + 1:]),
                                                      errors=None)
            yield
            return
        generation = int(raw_generation) if raw_generation is not None else await GENERATION.current(ctx.redis)
        state = ctx.loader(OperationCacheState)
        state.generation = generation
        yield
        result = execution.result
        if not isinstance(result, GraphQLExecutionResult) or result.errors or result.data is None:
            return  # refused: nothing logged, as the failed transaction logs nothing either
        answer = orjson.dumps(result.data)
        async with ctx.redis.pipeline(transaction=False) as pipe:
            _append_searches(pipe, state.searches, user_field)
            if ctx.cacheable and len(answer) <= _MAX_RESPONSE_BYTES:
                head = orjson.dumps([[s.query, str(s.result_count)] for s in state.searches])
                pipe.set(f"{RESPONSE_PREFIX}{generation}:{digest}", head + b"\n" + answer,
                         ex=ctx.settings.response_cache_ttl_seconds)
            await pipe.execute()


# ---- the query-log stream, drained into search.query_log ----------------------------------------------------

def _entry_row(entry_id: str, fields: dict[Any, Any]) -> dict[str, Any]:
    text = {reply_text(k): reply_text(v) for k, v in fields.items()}
    milliseconds = int(entry_id.partition("-")[0])  # an entry id is `<ms>-<seq>`, stamped by Redis on XADD
    return {"id": next_id(), "stream_entry": entry_id, "query": text["q"], "result_count": int(text["n"]),
            "user_id": int(text["u"]) if text.get("u") else None,
            "searched_at": datetime.fromtimestamp(milliseconds / 1000, UTC)}


async def drain_query_log(session: AsyncSession, redis: Redis) -> int:
    """Move the searches waiting in the stream into search.query_log, in `session`'s transaction; they leave
    the stream once it commits. Idempotent (the table is unique on the stream entry), so the worker and
    searchInsights may drain at once. Returns the entries read."""
    drained: list[str] = []
    start = "-"
    while True:
        entries = await redis.xrange(QUERY_LOG_STREAM, min=start, max="+", count=DRAIN_BATCH) or []
        # redis-py's entry type also covers XAUTOCLAIM's deleted entries (nil); XRANGE answers none.
        rows = [_entry_row(reply_text(entry_id), fields) for entry_id, fields in entries
                if entry_id is not None and fields is not None]
        await repository.log_streamed_queries(session, rows)
        drained += [row["stream_entry"] for row in rows]
        if len(entries) < DRAIN_BATCH:
            break
        start = "(" + drained[-1]
    if drained:
        async def forget() -> None:
            await redis.xdel(QUERY_LOG_STREAM, *drained)
        after_commit(session, forget)
    return len(drained)


# ---- synonyms, cached in process per generation ------------------------------------------------------------

class SynonymCache:
    """Every synonym group, loaded once per generation per process (a synonym change bumps the generation),
    so a search finds its synonyms without a round trip."""

    def __init__(self) -> None:
        self._generation: int | None = None
        self._groups_by_term: dict[str, list[list[str]]] = {}

    async def groups_touching(self, session: AsyncSession, generation: int, terms: Sequence[str]
                              ) -> list[list[str]]:
        """As repository.synonym_groups_touching: the groups having one of `terms`."""
        if generation != self._generation:
            by_term: dict[str, list[list[str]]] = {}
            for group in await repository.synonym_groups(session):
                for term in group:
                    by_term.setdefault(term, []).append(group)
            self._generation, self._groups_by_term = generation, by_term
        found: dict[int, list[str]] = {}
        for term in terms:
            for group in self._groups_by_term.get(term, ()):
                found.setdefault(id(group), group)
        return list(found.values())


SYNONYMS = SynonymCache()
