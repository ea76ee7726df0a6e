"""Internal HTTP reads at checkout (docs/commerce-spine.md, "Synchronous reads at checkout").

Orders does not read the cart's or the users' stores: it asks their owners, forwarding the caller's
Authorization header so they decide who may check out which cart or use which address. One pooled
`PeerClient` per process (built in app.py) keeps connections warm on the hot path. It runs on aiohttp, not
httpx: on this path httpx/httpcore cost about a third of the orders process's CPU, aiohttp a fraction of it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from kernel.errors import AppError, Conflict, Forbidden, NotFound, Unauthenticated

log = logging.getLogger("nexuscart.orders.clients")

INTERNAL_HTTP = "internal_http"  # key of the client in ServiceResources.extras

_MAPPED: dict[int, type[AppError]] = {401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict}
_DEFAULT_MESSAGES = {401: "Authentication required", 403: "You are not allowed to do this", 404: "Not found",
                     409: "Conflict"}
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class PeerUnavailable(RuntimeError):
    """A peer failed in a way the client cannot fix: surfaces as a bare INTERNAL_SERVER_ERROR."""


class PeerClient:
    """The pooled HTTP client orders uses to read its peers (GET only, the body read in full).

    aiohttp binds a session to the running event loop, so the session is created on first use, inside the
    loop that serves requests, not when the app is built. `aclose()` (called by kernel/app.py at shutdown for
    every extra that has one) closes it; a later call would open a fresh one.
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

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def build_internal_client(timeout_seconds: float) -> PeerClient:
    return PeerClient(timeout_seconds)


async def get_json(http: PeerClient, url: str, *, params: dict[str, str] | None = None,
                   authorization: str | None, what: str) -> dict[str, Any]:
    headers = {"authorization": authorization} if authorization else None
    try:
        status, content = await http.get(url, params=params, headers=headers)
    except _TRANSPORT_ERRORS as exc:
        log.error("peer call failed", extra={"peer": what, "error": type(exc).__name__})
        raise PeerUnavailable(f"{what}: {type(exc).__name__}") from exc
    if status == 200:
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise PeerUnavailable(f"{what}: undecodable body") from exc
        if not isinstance(body, dict):
            raise PeerUnavailable(f"{what}: unexpected body")
        return body
    error = _MAPPED.get(status)
    if error is None:
        log.error("peer answered an unexpected status", extra={"peer": what, "status": status})
        raise PeerUnavailable(f"{what}: HTTP {status}")
    # The peers answer {code, message} with client-facing messages (they are the owners of the decision).
    try:
        message = str(orjson.loads(content).get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        message = ""
    raise error(message[:300] or _DEFAULT_MESSAGES[status])


async def fetch_checkout(http: PeerClient, cart_service_url: str, *, cart_id: str | None,
                         authorization: str | None) -> dict[str, Any]:
    return await get_json(http, f"{cart_service_url.rstrip('/')}/internal/checkout",
                          params={"cart_id": cart_id or ""}, authorization=authorization, what="cart")


async def fetch_address(http: PeerClient, users_service_url: str, *, address_id: int,
                        authorization: str | None) -> dict[str, Any]:
    return await get_json(http, f"{users_service_url.rstrip('/')}/internal/addresses/{address_id}",
                          authorization=authorization, what="users")
