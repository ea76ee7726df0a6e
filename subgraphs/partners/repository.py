"""Postgres SQL of API keys: Core statements over the tables of models.py."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.partners.models import ApiKeyRecord, api_keys

_COLUMNS = (api_keys.c.id, api_keys.c.name, api_keys.c.secret_hash, api_keys.c.scopes, api_keys.c.persisted_only,
            api_keys.c.rate_limit_per_minute, api_keys.c.created_at, api_keys.c.revoked_at)


def _key(row: Any) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(**{**m, "scopes": tuple(m["scopes"])})


async def insert_key(session: AsyncSession, values: dict[str, Any]) -> ApiKeyRecord:
    return _key((await session.execute(insert(api_keys).values(**values).returning(*_COLUMNS))).one())


async def get_key(session: AsyncSession, key_id: int) -> ApiKeyRecord | None:
    row = (await session.execute(select(*_COLUMNS).where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def get_key_by_hash(session: AsyncSession, secret_hash: str) -> ApiKeyRecord | None:
    row = (await session.execute(select(*_COLUMNS).where(api_keys.c.secret_hash == secret_hash))).first()
    return _key(row) if row else None


async def list_keys(session: AsyncSession, *, limit: int) -> list[ApiKeyRecord]:
    rows = await session.execute(select(*_COLUMNS).order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
                                 .limit(limit))
    return [_key(r) for r in rows]


async def revoke_key(session: AsyncSession, key_id: int, at: datetime) -> ApiKeyRecord | None:
    """Revoked once: a second call keeps the first revocation time."""
    await session.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                          .values(revoked_at=at))
    return await get_key(session, key_id)
