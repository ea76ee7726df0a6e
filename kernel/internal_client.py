"""The calling side of internal HTTP between services (their `/internal/...` endpoints; the serving side is
kernel/internal_server.py).

A service does not read another's store: it asks the owner, forwarding the caller's Authorization header so
the owner decides who may do what. An expected refusal comes back as the same `AppError`, with the same code,
that the owner raised (one table, kernel.errors.HTTP_STATUS); anything else is `PeerUnavailable`.
One pooled `PeerClient` per process keeps connections warm on hot paths. It runs on aiohttp, not httpx: on
orders' checkout path httpx/httpcore cost about a third of the process's CPU, aiohttp a fraction of it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from kernel import tracing
from kernel.errors import (
    CODE_FOR_STATUS,
    HTTP_STATUS,
    AppError,
    BadUserInput,
    Conflict,
    ErrorCode,
    Forbidden,
    NotFound,
    OutOfStock,
    RateLimited,
    Unauthenticated,
)

log = logging.getLogger("nexuscart.internal_client")

_ERROR_CLASS: dict[ErrorCode, type[AppError]] = {
    ErrorCode.BAD_USER_INPUT: BadUserInput, ErrorCode.UNAUTHENTICATED: Unauthenticated, ErrorCode.FORBIDDEN: Forbidden,
    ErrorCode.NOT_FOUND: NotFound, ErrorCode.CONFLICT: Conflict, ErrorCode.OUT_OF_STOCK: OutOfStock,
    ErrorCode.RATE_LIMITED: RateLimited}
_DEFAULT_MESSAGES = {ErrorCode.BAD_USER_INPUT: "Bad request", ErrorCode.UNAUTHENTICATED: "Authentication required",
                     ErrorCode.FORBIDDEN: "You are not allowed to do this", ErrorCode.NOT_FOUND: "Not found",
                     ErrorCode.CONFLICT: "Conflict", ErrorCode.OUT_OF_STOCK: "Out of stock",
                     ErrorCode.RATE_LIMITED: "Too many requests; try again shortly"}
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class PeerUnavailable(RuntimeError):
    """A peer failed in a way the client cannot fix: surfaces as a bare INTERNAL_SERVER_ERROR."""


class PeerClient:
    """The pooled HTTP client a service uses to call its peers' internal endpoints (the body read in full).

    aiohttp binds a session to the running event loop, so the session is created on first use, inside the
    loop that serves requests, not when the app is built. `aclose()` (ServiceResources.aclose, at shutdown) closes
    it; a later call would open a fresh one.
    """

    def __init__(self, timeout_seconds: float, *, limit: int = 200, keepalive_timeout: float = 30.0) -> None:
        # `total` bounds the whole call (pool wait, connect, send, read): placeOrder never hangs on a peer.
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._limit = limit  # sized for placeOrder bursts: up to two peer calls per order
        self._keepalive_timeout = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=self._keepalive_timeout)
            # trust_env=False (the default): internal calls never go through an HTTP(S)_PROXY from the environment.
            session = self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                            raise_for_status=False)
        return session

    async def get(self, url: str, *, params: dict[str, str] | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body). Raises aiohttp.ClientError, asyncio.TimeoutError or OSError on transport failure."""
        async with self._open().get(url, params=params, headers=headers) as response:
            return response.status, await response.read()

    async def post(self, url: str, *, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        async with self._open().post(url, data=body, headers={"content-type": "application/json",
                                                               **(headers or {})}) as response:
            return response.status, await response.read()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


async def get_json(http: PeerClient, url: str, *, params: dict[str, str] | None = None,
                   authorization: str | None, what: str) -> dict[str, Any]:
    # The caller's trace goes along (traceparent), so the peer's work is part of the same trace.
    headers = tracing.inject({"authorization": authorization} if authorization else {}) or None
    try:
        status, content = await http.get(url, params=params, headers=headers)
    except _TRANSPORT_ERRORS as exc:
        log.error("peer call failed", extra={"peer": what, "error": type(exc).__name__})
        raise PeerUnavailable(f"{what}: {type(exc).__name__}") from exc
    return _decode(status, content, what)


async def post_json(http: PeerClient, url: str, body: dict[str, Any], *, authorization: str | None,
                    what: str) -> dict[str, Any]:
    # The caller's trace goes along (traceparent), so the peer's work is part of the same trace.
    headers = tracing.inject({"authorization": authorization} if authorization else {}) or None
    try:
        status, content = await http.post(url, body=orjson.dumps(body), headers=headers)
    except _TRANSPORT_ERRORS as exc:
        log.error("peer call failed", extra={"peer": what, "error": type(exc).__name__})
        raise PeerUnavailable(f"{what}: {type(exc).__name__}") from exc
    return _decode(status, content, what)


async def fetch_entity(http: PeerClient, service_url: str, typename: str, entity_id: int, query: str, *,
                       what: str) -> dict[str, Any] | None:
    """One entity as its owning subgraph answers the router's `_entities` fetch (`query` selects
    `... on <typename> { ... }`); None when the owner does not know it. Used where an event-fed projection
    has not heard of an entity yet and asks the owner instead of waiting for the event."""
    body = await post_json(http, f"{service_url.rstrip('/')}/graphql",
                           {"query": query, "variables": {"r": [{"__typename": typename, "id": str(entity_id)}]}},
                           authorization=None, what=what)
    try:
        entity = body["data"]["_entities"][0]
    except (KeyError, IndexError, TypeError):
        raise PeerUnavailable(f"{what}: unexpected _entities answer") from None
    return entity or None


def _decode(status: int, content: bytes, what: str) -> dict[str, Any]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if status == 200:
        if not isinstance(body, dict):
            raise PeerUnavailable(f"{what}: unexpected body")
        return body
    # The owner answers {code, message}, the message client-facing (it made the decision): raise the same error.
    code = _error_code(body, status)
    if code is None:
        log.error("peer answered an unexpected status", extra={"peer": what, "status": status})
        raise PeerUnavailable(f"{what}: HTTP {status}")
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    raise _ERROR_CLASS[code](message[:300] or _DEFAULT_MESSAGES[code])


def _error_code(body: Any, status: int) -> ErrorCode | None:
    if isinstance(body, dict):
        try:
            code = ErrorCode(body.get("code"))
        except ValueError:
            code = None
        if code is not None and HTTP_STATUS.get(code) == status:
            return code
    return CODE_FOR_STATUS.get(status)
