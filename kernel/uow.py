"""The unit of work: the one way a transaction is opened, committed and followed by its after-commit work.

Every edge that owns a transaction uses it: the GraphQL request (kernel/graphql/context.py), each internal
endpoint (kernel/internal_server.py), each consumed event (kernel/consumer.py) and each periodic job.
Services never commit; they only flush, and queue with `after_commit` what must wait for the commit
(cache invalidation, live pushes, Redis bookkeeping) so that nobody sees it before the new state is visible,
and with `before_commit` writes gathered over the whole transaction and made once at its end (a consumer
batch's stock moves, so the hot stock rows are locked only for the transaction's last statements).

    async with unit_of_work(session_factory) as session:
        await service.place_order(session, ...)
    # committed here, then the callbacks ran; on an exception: rolled back, callbacks dropped, re-raised
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger("nexuscart.uow")

AfterCommit = Callable[[], Awaitable[Any]]
BeforeCommit = Callable[[], Awaitable[Any]]
_AFTER_COMMIT = "nexuscart_after_commit"
_AFTER_COMMIT_ONCE = "nexuscart_after_commit_once"
_BEFORE_COMMIT = "nexuscart_before_commit"


def after_commit(session: AsyncSession, callback: AfterCommit, *, once: str | None = None) -> None:
    """Run `callback` once `session`'s transaction has committed; dropped if it rolls back. With `once`, only
    the first callback queued under that key runs: a transaction that applies twenty events bumps a cache
    generation once, not twenty times."""
    if once is not None:
        keys: set[str] = session.info.setdefault(_AFTER_COMMIT_ONCE, set())
        if once in keys:
            return
        keys.add(once)
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def before_commit(session: AsyncSession, work: BeforeCommit) -> None:
    """Run `work` in `session`'s transaction just before it commits, after everything else the transaction
    does; dropped if it rolls back first. If `work` raises, the transaction rolls back and the error is raised
    as a failed commit's would be."""
    session.info.setdefault(_BEFORE_COMMIT, []).append(work)


async def finish(session: AsyncSession, *, commit: bool) -> None:
    """End `session`'s transaction: run its before-commit work and commit (then run its callbacks), or roll
    back (and drop both); close it. Failed before-commit work or a failed commit raises (the transaction is
    rolled back), and the callbacks never run."""
    work: list[BeforeCommit] = session.info.pop(_BEFORE_COMMIT, [])
    try:
        if commit:
            for step in work:
                await step()
            await session.commit()
        else:
            await session.rollback()
    finally:
        # Popped only now: before-commit work may queue callbacks of its own (a cache to drop once it commits).
        callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
        session.info.pop(_AFTER_COMMIT_ONCE, None)
        await session.close()
    if commit:
        for callback in callbacks:
            try:
                await callback()
            except Exception:  # committed already: report, never turn success into an error
                log.exception("after-commit callback failed")


@contextlib.asynccontextmanager
async def unit_of_work(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends normally, rolled back when it raises."""
    session = session_factory()
    try:
        yield session
    except BaseException:
        await finish(session, commit=False)
        raise
    await finish(session, commit=True)
