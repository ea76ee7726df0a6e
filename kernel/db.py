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

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import ARRAY, ColumnElement, CursorResult, Result, any_, bindparam, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
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


# Postgres refusing connections for a moment: starting up or recovering (57P03), shut down by an operator or a
# failover (57P01), crashed (57P02), or the connection lost (class 08).
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03")


# Two transactions waited on each other (deadlock, 40P01) or a serializable one lost to another (40001): the work
# itself is fine and succeeds when run again, which is what Postgres asks of its clients.
_CONTENTION_SQLSTATES = ("40P01", "40001")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps (SQLAlchemy's `orig`), was caused by or raised during, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__


def sqlstate(exc: BaseException) -> str | None:
    """The Postgres error code behind `exc`, if any (what a log line should say instead of `DBAPIError`)."""
    return next((code for cause in _causes(exc) if isinstance(code := getattr(cause, "sqlstate", None), str)), None)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says a peer (Postgres, Redis) is unreachable rather than that the event is bad: such a
    failure says nothing about the event, so it must not use up the event's attempts and park it on the DLQ."""
    for current in _causes(exc):
        if isinstance(current, (ConnectionError, RedisConnectionError)):
            return True
        if isinstance(current, FileNotFoundError) and current.filename is None:
            return True  # connecting to a unix socket that is not there: Postgres (or Redis) is down
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
            return True
        if getattr(current, "sqlstate", None) in _UNAVAILABLE_SQLSTATES:
            return True
    return False


def is_contention(exc: BaseException) -> bool:
    """True when `exc` is a deadlock or serialization failure: a concurrent transaction won, nothing is wrong
    with the work, and running it again is the fix (no attempt of an event should be spent on it)."""
    return sqlstate(exc) in _CONTENTION_SQLSTATES


# How long a new connection keeps trying while Postgres restarts (crash recovery answers 57P03 for a moment).
CONNECT_RETRY_SECONDS = 5.0


def _connect_with_retry(dsn: str, **connect_args: Any) -> Callable[[], Awaitable[Any]]:
    """The pool's connection factory: a Postgres restarting or failing over costs the request a short wait, not
    an error. Only outages are retried (is_outage); a wrong password or database fails at once."""
    async def connect() -> Any:
        deadline = time.monotonic() + CONNECT_RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                return await asyncpg.connect(dsn, **connect_args)
            except Exception as exc:
                if not is_outage(exc) or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)  # backoff between connection attempts while Postgres comes back
            delay = min(delay * 2, 0.5)

    return connect


# A pooled connection idle this long is pinged before it is handed out (see _check_on_checkout).
IDLE_PING_SECONDS = 10.0


def _check_on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection can be dead: Postgres restarted or failed over, or an idle-connection killer ended it.
    Handing it out would cost the request an error it did nothing to cause, so a dead one is replaced here
    (DisconnectionError makes the pool open a fresh one). Postgres closes the socket of every backend it ends,
    and the driver marks the connection closed as soon as the event loop reads that, so `is_closed()` catches
    those for free. Only a connection idle for IDLE_PING_SECONDS or more, which may have been dropped without a
    word (a NAT or a failover that never closed it), pays a round trip. SQLAlchemy's `pool_pre_ping` pinged on
    every checkout: ~5% of a service's CPU and one more round trip per request."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")
    checked_in_at = record.info.get("checked_in_at")
    if checked_in_at is not None and time.monotonic() - checked_in_at >= IDLE_PING_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("the pooled connection did not answer a ping") from exc


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def create_engine(settings: Settings) -> AsyncEngine:
    settings.require_peers("database_url")
    engine = create_async_engine(
        sqlalchemy_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        async_creator=_connect_with_retry(asyncpg_dsn(settings.database_url),
                                          server_settings={"application_name": settings.service_name}),
    )
    event.listen(engine.sync_engine.pool, "checkout", _check_on_checkout)
    event.listen(engine.sync_engine.pool, "checkin", _note_checkin)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_ARRAY_TYPES: dict[Any, ARRAY[Any]] = {}


def any_of(column: ColumnElement[Any] | QueryableAttribute[Any], values: Iterable[Any],
           item_type: Any = None) -> ColumnElement[bool]:
    """`column = ANY(:values)`, the one way a statement takes a list of values (tests/test_architecture.py
    forbids `in_` with a list). The values travel as ONE array parameter, so the statement text (and the
    driver's prepared statement) is the same for any number of values, where `in_` renders one text per
    length and expands its parameters on every execution. `item_type` defaults to the column's type; the array
    type is made once per item type, not once per call (SQLAlchemy adapts each new type object to the dialect
    again)."""
    item = column.type if item_type is None else item_type
    array = _ARRAY_TYPES.get(item)
    if array is None:
        array = _ARRAY_TYPES.setdefault(item, ARRAY(item))
    return column == any_(bindparam(None, list(values), type_=array))


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT / UPDATE / DELETE without RETURNING touched. At runtime `session.execute` returns a
    CursorResult for those statements, but SQLAlchemy types it as Result since 2.0.44; its changelog says to
    cast, which is done here once."""
    return cast("CursorResult[Any]", result).rowcount

