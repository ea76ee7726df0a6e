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
statements; a repeated search costs one Redis round trip instead. It is the kernel's response cache
(kernel/response_cache.py) with a `ReplayedLog`: searchInsights must count every search, so a cached answer
carries the searches it logs, and a hit appends them to the query-log stream in the same script that finds it.

Not bumped by trackSearchClick: a click's popularity point only breaks relevance ties, and bumping on every
click would empty the cache as fast as shoppers browse; such an order lags by the TTL at most.

Consistency as the kernel's cache: the generation is read before the statements run and the answer is stored
under it, and writers bump it only after their commit, so an answer computed before a commit is never served
after the bump that follows it. A miss also hands its generation to the in-process synonym cache
(`SynonymCache`), which is correct for the same reason.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.graphql import RequestContext
from kernel.ids import next_id
from kernel.redis import reply_text
from kernel.response_cache import Generation, ReplayedLog, response_cache_extension
from kernel.uow import after_commit
from subgraphs.search import repository

GENERATION = Generation("search")
QUERY_LOG_STREAM = "search:query-log"
# Bounds the stream while no worker drains it; far above what one drain interval collects.
QUERY_LOG_MAX_ENTRIES = 1_000_000
DRAIN_BATCH = 5_000
# Only these root fields are cached: public reads whose answer does not depend on the caller.
CACHED_ROOT_FIELDS = frozenset({"search", "searchSuggestions"})

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


def _note_generation(ctx: RequestContext, generation: int) -> None:
    ctx.loader(OperationCacheState).generation = generation


def _logged(ctx: RequestContext) -> list[dict[str, str]]:
    return [{"q": s.query, "n": str(s.result_count)} for s in ctx.loader(OperationCacheState).searches]


def _searcher(ctx: RequestContext) -> dict[str, str]:
    user = ctx.user  # a bad or expired token is refused here (UNAUTHENTICATED), cached answer or not
    return {"u": str(user.user_id) if user is not None else ""}


# `search` / `searchSuggestions` answers under the search generation; every search served, from the cache or
# not, goes to the query-log stream (a hit's in the lookup's own round trip).
QUERY_LOG = ReplayedLog(stream=QUERY_LOG_STREAM, max_entries=QUERY_LOG_MAX_ENTRIES, entries=_logged,
                        request_fields=_searcher)
SearchResponseCache = response_cache_extension(generation=GENERATION, root_fields=CACHED_ROOT_FIELDS,
                                               on_generation=_note_generation, replayed_log=QUERY_LOG)


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
