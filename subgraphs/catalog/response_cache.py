"""Whole-response cache for catalog queries, keyed by the catalog generation.

Why: a browse page (20 products x variants) is ~350 resolved fields, and graphql-core spends ~10 us per
field however cheap the resolvers are, so executing costs ~4 ms of CPU even with every document in Redis.
A repeated query (same document, operation name and variables) at the same catalog generation has the
same answer, because catalog reads do not depend on the caller and every catalog write bumps the
generation after it commits (cache.py). A hit costs one Redis round trip and no execution.

Rules: only `query` operations; only results without errors; results above 512 KiB are not stored.
A resolver that one day returns caller-specific data must call `context.mark_uncacheable()`.
"""
from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from kernel.graphql import RequestContext
from subgraphs.catalog import cache
from subgraphs.catalog.dataloaders import CatalogReads

_MAX_BYTES = 512 * 1024


class ResponseCacheExtension(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        execution = self.execution_context
        ctx = execution.context
        if not isinstance(ctx, RequestContext) or execution.operation_type != OperationType.QUERY:
            yield
            return
        identity = orjson.dumps([execution.query, execution.operation_name, execution.variables],
                                option=orjson.OPT_SORT_KEYS)
        digest = hashlib.blake2b(identity, digest_size=16).hexdigest()
        generation, blob = await cache.response_lookup(ctx.redis, digest)
        if blob is not None:
            execution.result = GraphQLExecutionResult(data=orjson.loads(blob), errors=None)
            yield
            return
        ctx.loader(CatalogReads).observe_generation(generation)
        yield
        result = execution.result
        if (generation is None or not isinstance(result, GraphQLExecutionResult) or result.errors
                or result.data is None or not ctx.cacheable):
            return
        payload = orjson.dumps(result.data)
        if len(payload) <= _MAX_BYTES:
            await ctx.redis.set(cache.response_key(generation, digest), payload,
                                ex=ctx.settings.catalog_cache_ttl_seconds)
