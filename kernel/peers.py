"""Internal HTTP calls between services (their `/internal/...` endpoints).

A service does not read another's store: it asks the owner, forwarding the caller's Authorization header so
the owner decides who may do what. One pooled `PeerClient` per process keeps connections warm on hot paths.
It runs on aiohttp, not httpx: on orders' checkout path httpx/httpcore cost about a third of the process's
CPU, aiohttp a fraction of it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from kernel.errors import AppError, BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated

log = logging.getLogger("nexuscart.peers")

INTERNAL_HTTP = "internal_http"  # key of the client in ServiceResources.extras

_MAPPED: dict[int, type[AppError]] = {400: BadUserInput, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict}
_DEFAULT_MESSAGES = {400: "Bad request", 401: "Authentication required", 403: "You are not allowed to do this", 404: "Not found",
                     409: "Conflict"}
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class PeerUnavailable(RuntimeError):
    """A peer failed in a way the client cannot fix: surfaces as a bare INTERNAL_SERVER_ERROR."""


class PeerClient:
    """The pooled HTTP client a service uses to call its peers' internal endpoints (the body read in full).

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

    async def post(self, url: str, *, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        async with self._open().post(url, data=body, headers={"content-type": "application/json",
                                                               **(headers or {})}) as response:
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
    return _decode(status, content, what)


async def post_json(http: PeerClient, url: str, body: dict[str, Any], *, authorization: str | None,
                    what: str) -> dict[str, Any]:
    headers = {"authorization": authorization} if authorization else None
    try:
        status, content = await http.post(url, body=orjson.dumps(body), headers=headers)
    except _TRANSPORT_ERRORS as exc:
        log.error("peer call failed", extra={"peer": what, "error": type(exc).__name__})
        raise PeerUnavailable(f"{what}: {type(exc).__name__}") from exc
    return _decode(status, content, what)


def _decode(status: int, content: bytes, what: str) -> dict[str, Any]:
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


# ---- the serving side of internal endpoints ----------------------------------------------------------------

_HTTP_STATUS = {"BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404,
                "CONFLICT": 409, "OUT_OF_STOCK": 409, "RATE_LIMITED": 429}


def json_response(body: Any, status: int = 200) -> Any:
    from starlette.responses import Response
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


def error_response(exc: AppError) -> Any:
    """{code, message} with the status `_decode` maps back to the same error on the calling side."""
    return json_response({"code": exc.code.value, "message": exc.message}, _HTTP_STATUS.get(exc.code.value, 400))
