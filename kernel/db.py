"""Async SQLAlchemy engine and sessions. One Postgres schema per domain; a domain's models bind to it."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from kernel.settings import Settings

log = logging.getLogger("nexuscart.db")
_AFTER_COMMIT = "nexuscart_after_commit"


def sqlalchemy_url(database_url: str) -> str:
    """Accept plain `postgresql://` URLs (what operators paste) and select the asyncpg driver."""
    scheme, rest = database_url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+asyncpg"
    return f"{scheme}://{rest}"


def asyncpg_dsn(database_url: str) -> str:
    """The same URL for raw asyncpg (LISTEN/NOTIFY), without SQLAlchemy's driver suffix."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def create_engine(settings: Settings) -> AsyncEngine:
    settings.require_peers("database_url")
    return create_async_engine(
        sqlalchemy_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        connect_args={"server_settings": {"application_name": settings.service_name}},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def domain_base(schema: str) -> type[DeclarativeBase]:
    """A declarative base whose tables live in the domain's own Postgres schema."""

    class Base(DeclarativeBase):
        metadata = MetaData(schema=schema)

    Base.__name__ = f"{schema.title()}Base"
    return Base


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[Any]]) -> None:
    """Run `callback` once `session`'s transaction has committed (cache invalidation, live pushes): things
    that must not be seen before the new state is visible. Services call this; the edge that owns the
    transaction (the GraphQL request context, the event consumer) runs the callbacks after its commit."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def take_after_commit(session: AsyncSession) -> list[Callable[[], Awaitable[Any]]]:
    """The callbacks queued on `session`, removed from it (to run after commit, or drop on rollback)."""
    return session.info.pop(_AFTER_COMMIT, [])


async def run_callbacks(callbacks: list[Callable[[], Awaitable[Any]]]) -> None:
    for callback in callbacks:
        try:
            await callback()
        except Exception:  # committed already: report, but do not turn success into an error
            log.exception("after-commit callback failed")
