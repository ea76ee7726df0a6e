"""Async SQLAlchemy engine and sessions. One Postgres schema per domain; a domain's models bind to it."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from kernel.settings import Settings


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
