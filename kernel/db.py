"""Async SQLAlchemy engine and sessions. One Postgres schema per domain; a domain's models bind to it.

How a domain talks to Postgres (one way, everywhere):
  - All SQL of a domain lives in its repository.py (one repository module per aggregate is fine, e.g.
    promotions' coupon_repository.py). Services never build statements and never call session.execute / add /
    delete / get themselves; they call repository functions and may flush.
  - Statements are SQLAlchemy Core built on the tables of the domain's models.py: select / insert / update /
    delete, and `sqlalchemy.dialects.postgresql.insert(...).on_conflict_do_...` for upserts.
  - `text()` only where Core cannot say it clearly (a data-modifying CTE, FOR UPDATE SKIP LOCKED over a join,
    unnest bulk writes, ...) or on a measured hot path, each with a one-line comment saying why.
  - ORM-mapped classes are fine as table definitions and as read results; a write that loads a row, changes
    its attributes and flushes is acceptable inside a repository function only.
Transactions and after-commit work belong to kernel/uow.py.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import ARRAY, ColumnElement, CursorResult, Result, any_, bindparam
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import QueryableAttribute

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


def any_of(column: ColumnElement[Any] | QueryableAttribute[Any], values: Iterable[Any],
           item_type: Any) -> ColumnElement[bool]:
    """`column = ANY(:values)`: the values travel as ONE array parameter, so the statement text (and the
    driver's prepared statement) is the same for any number of values, unlike `in_`."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(item_type)))


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT / UPDATE / DELETE without RETURNING touched. At runtime `session.execute` returns a
    CursorResult for those statements, but SQLAlchemy types it as Result since 2.0.44; its changelog says to
    cast, which is done here once."""
    return cast("CursorResult[Any]", result).rowcount

