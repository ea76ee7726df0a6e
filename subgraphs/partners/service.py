"""Partner API keys: creation (the secret is returned once; only its SHA-256 is kept), listing, revocation,
usage. No GraphQL and no HTTP here; the router enforces keys at the edge and the subgraphs check scopes
(kernel/graphql/scopes.py)."""
from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from datetime import UTC, date, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.ids import next_id
from kernel.uow import after_commit
from subgraphs.partners import key_store, repository
from subgraphs.partners.errors import ApiKeyNotFound, InvalidApiKeyInput
from subgraphs.partners.models import ApiKeyRecord

ADMIN = "ADMIN"
SECRET_PREFIX = "nxc_"
# The name is also the folder of the key's document allowlist (router/operations/<name>/), hence a slug.
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# `<subgraph>:read` / `<subgraph>:write`: what each subgraph checks (kernel/graphql/scopes.py).
_SCOPE = re.compile(r"^[a-z][a-z0-9-]{0,31}:(read|write)$")
MAX_RATE_LIMIT_PER_MINUTE = 100_000
MAX_USAGE_DAYS = 90
MAX_KEYS_LISTED = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class CreateApiKeyIn:
    name: str
    scopes: list[str]
    persisted_only: bool
    rate_limit_per_minute: int


@dataclasses.dataclass(frozen=True, slots=True)
class CreatedApiKey:
    secret: str
    key: ApiKeyRecord


def _validated(data: CreateApiKeyIn) -> CreateApiKeyIn:
    if not _NAME.match(data.name):
        raise InvalidApiKeyInput("name must be 2..63 characters: lower-case letters, digits and '-' (it names "
                                 "the key's document allowlist, router/operations/<name>/)", field="name")
    bad = [s for s in data.scopes if not _SCOPE.match(s)]
    if bad or len(data.scopes) > 64:
        raise InvalidApiKeyInput("each scope is '<subgraph>:read' or '<subgraph>:write', e.g. catalog:read "
                                 "(at most 64)", field="scopes")
    if not 1 <= data.rate_limit_per_minute <= MAX_RATE_LIMIT_PER_MINUTE:
        raise InvalidApiKeyInput(f"rateLimitPerMinute must be 1..{MAX_RATE_LIMIT_PER_MINUTE}",
                                 field="rateLimitPerMinute")
    return dataclasses.replace(data, scopes=sorted(set(data.scopes)))


async def create_key(session: AsyncSession, redis: Redis, *, caller: Principal, data: CreateApiKeyIn
                     ) -> CreatedApiKey:
    caller.require_role(ADMIN)
    data = _validated(data)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = await repository.insert_key(session, {
        "id": next_id(), "name": data.name, "secret_hash": hash_secret(secret), "scopes": data.scopes,
        "persisted_only": data.persisted_only, "rate_limit_per_minute": data.rate_limit_per_minute,
        "created_by": caller.user_id, "created_at": utc_now()})
    after_commit(session, lambda: key_store.publish(redis, key))
    return CreatedApiKey(secret=secret, key=key)


async def list_keys(session: AsyncSession, *, caller: Principal) -> list[ApiKeyRecord]:
    caller.require_role(ADMIN)
    return await repository.list_keys(session, limit=MAX_KEYS_LISTED)


async def revoke_key(session: AsyncSession, redis: Redis, *, caller: Principal, key_id: int) -> ApiKeyRecord:
    caller.require_role(ADMIN)
    key = await repository.revoke_key(session, key_id, utc_now())
    if key is None:
        raise ApiKeyNotFound(key_id)
    after_commit(session, lambda: key_store.publish(redis, key))
    return key


async def key_usage(session: AsyncSession, redis: Redis, *, caller: Principal, key_id: int, days: int
                    ) -> list[key_store.UsageDay]:
    """One entry per UTC day, oldest first, today last; days without traffic count zero."""
    caller.require_role(ADMIN)
    if not 1 <= days <= MAX_USAGE_DAYS:
        raise InvalidApiKeyInput(f"days must be 1..{MAX_USAGE_DAYS}", field="days")
    if await repository.get_key(session, key_id) is None:
        raise ApiKeyNotFound(key_id)
    return await key_store.usage(redis, key_id, usage_day_range(days))


async def last_used(redis: Redis, keys: list[ApiKeyRecord]) -> dict[int, datetime]:
    return await key_store.last_used(redis, [k.id for k in keys])


async def refresh_cached_key(session: AsyncSession, redis: Redis, secret_hash: str) -> ApiKeyRecord | None:
    """The router's cache miss: the key with this secret hash, re-published to Redis (or a short-lived
    'unknown' entry)."""
    key = await repository.get_key_by_hash(session, secret_hash)
    if key is None:
        await key_store.publish_unknown(redis, secret_hash)
    else:
        await key_store.publish(redis, key)
    return key


def usage_day_range(days: int) -> list[date]:
    today = utc_now().date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
