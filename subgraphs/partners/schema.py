"""The partners subgraph's GraphQL schema: ADMIN management of partner API keys. Partners use their key through
the router (X-Api-Key); nothing here is on their request path."""
from __future__ import annotations

from datetime import date, datetime

import strawberry

from kernel.graphql import Info, RequestContext, build_schema
from kernel.ids import parse_id
from subgraphs.partners import service
from subgraphs.partners.key_store import UsageDay
from subgraphs.partners.models import ApiKeyRecord


@strawberry.type(description="A partner API key. Its secret is shown once, by createApiKey; only a hash is kept.")
class ApiKey:
    id: strawberry.ID
    name: str = strawberry.field(description="Also names the key's document allowlist: router/operations/<name>/")
    scopes: list[str] = strawberry.field(description="'<subgraph>:read' / '<subgraph>:write', checked by each "
                                                     "subgraph, e.g. catalog:read, orders:write")
    persisted_only: bool = strawberry.field(description="Only the documents of its allowlist may be run")
    rate_limit_per_minute: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, key: ApiKeyRecord, last_used_at: datetime | None = None) -> ApiKey:
        return cls(id=strawberry.ID(str(key.id)), name=key.name, scopes=list(key.scopes),
                   persisted_only=key.persisted_only, rate_limit_per_minute=key.rate_limit_per_minute,
                   created_at=key.created_at, last_used_at=last_used_at, revoked_at=key.revoked_at)


@strawberry.type(description="A new API key and its secret, which is shown this once.")
class ApiKeyWithSecret:
    secret: str = strawberry.field(description="Send it as the X-Api-Key header")
    api_key: ApiKey


@strawberry.type(description="A key's traffic on one UTC day, as the router counted it.")
class ApiKeyUsageDay:
    date: date
    requests: int
    errors: int = strawberry.field(description="Requests answered with at least one error (refusals included)")
    cost: int = strawberry.field(description="Sum of the actual cost of the key's operations")

    @classmethod
    def from_usage(cls, usage: UsageDay) -> ApiKeyUsageDay:
        return cls(date=usage.day, requests=usage.requests, errors=usage.errors, cost=usage.cost)


@strawberry.input
class CreateApiKeyInput:
    name: str = strawberry.field(description="2..63 characters: a-z, 0-9, '-'; names the document allowlist")
    scopes: list[str] = strawberry.field(description="e.g. [\"catalog:read\", \"orders:read\"]")
    persisted_only: bool = strawberry.field(default=True, description="Only allowlisted documents may be run")
    rate_limit_per_minute: int = strawberry.field(default=600, description="Requests per minute, 1..100000")

    def to_service(self) -> service.CreateApiKeyIn:
        return service.CreateApiKeyIn(name=self.name, scopes=list(self.scopes), persisted_only=self.persisted_only,
                                      rate_limit_per_minute=self.rate_limit_per_minute)


def _admin_ctx(info: Info) -> RequestContext:
    ctx = info.context
    ctx.mark_uncacheable()
    return ctx


@strawberry.type
class Query:
    @strawberry.field(description="ADMIN: every API key, newest first (at most 500).")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        ctx = _admin_ctx(info)
        keys = await service.list_keys(await ctx.session(), caller=ctx.require_user())
        used = await service.last_used(ctx.redis, keys)
        return [ApiKey.from_record(k, used.get(k.id)) for k in keys]

    @strawberry.field(description="ADMIN: a key's requests, errors and cost per UTC day, oldest first, today "
                                  "last (days: 1..90).")
    async def api_key_usage(self, info: Info, id: strawberry.ID, days: int = 7) -> list[ApiKeyUsageDay]:
        ctx = _admin_ctx(info)
        usage = await service.key_usage(await ctx.session(), ctx.redis, caller=ctx.require_user(),
                                        key_id=parse_id(id), days=days)
        return [ApiKeyUsageDay.from_usage(u) for u in usage]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="ADMIN: a new partner API key. The secret is in this answer only.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> ApiKeyWithSecret:
        ctx = _admin_ctx(info)
        created = await service.create_key(await ctx.session(), ctx.redis, caller=ctx.require_user(),
                                           data=input.to_service())
        return ApiKeyWithSecret(secret=created.secret, api_key=ApiKey.from_record(created.key))

    @strawberry.mutation(description="ADMIN: revoke a key at once; its requests are then UNAUTHENTICATED. "
                                     "Revoking twice keeps the first time.")
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> ApiKey:
        ctx = _admin_ctx(info)
        key = await service.revoke_key(await ctx.session(), ctx.redis, caller=ctx.require_user(),
                                       key_id=parse_id(id))
        used = await service.last_used(ctx.redis, [key])
        return ApiKey.from_record(key, used.get(key.id))


schema = build_schema(query=Query, mutation=Mutation)
