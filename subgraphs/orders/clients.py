"""Internal HTTP reads at checkout (docs/commerce-spine.md, "Synchronous reads at checkout").

Orders does not read the cart's or the users' stores: it asks their owners, forwarding the caller's
Authorization header so they decide who may check out which cart or use which address. One pooled
`httpx.AsyncClient` per process (built in app.py) keeps connections warm on the hot path.
"""
from __future__ import annotations

import logging
from typing import Any

import httpx

from kernel.errors import AppError, Conflict, Forbidden, NotFound, Unauthenticated

log = logging.getLogger("nexuscart.orders.clients")

INTERNAL_HTTP = "internal_http"  # key of the client in ServiceResources.extras

_MAPPED: dict[int, type[AppError]] = {401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict}
_DEFAULT_MESSAGES = {401: "Authentication required", 403: "You are not allowed to do this", 404: "Not found",
                     409: "Conflict"}


class PeerUnavailable(RuntimeError):
    """A peer failed in a way the client cannot fix: surfaces as a bare INTERNAL_SERVER_ERROR."""


def build_internal_client(timeout_seconds: float) -> httpx.AsyncClient:
    # The pool is sized for placeOrder bursts: two peer calls per order, kept alive between requests.
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds),
                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=100))


async def get_json(http: httpx.AsyncClient, url: str, *, params: dict[str, str] | None = None,
                   authorization: str | None, what: str) -> dict[str, Any]:
    headers = {"authorization": authorization} if authorization else {}
    try:
        response = await http.get(url, params=params, headers=headers)
    except httpx.HTTPError as exc:
        log.error("peer call failed", extra={"peer": what, "error": type(exc).__name__})
        raise PeerUnavailable(f"{what}: {type(exc).__name__}") from exc
    if response.status_code == 200:
        try:
            body = response.json()
        except ValueError as exc:
            raise PeerUnavailable(f"{what}: undecodable body") from exc
        if not isinstance(body, dict):
            raise PeerUnavailable(f"{what}: unexpected body")
        return body
    error = _MAPPED.get(response.status_code)
    if error is None:
        log.error("peer answered an unexpected status", extra={"peer": what, "status": response.status_code})
        raise PeerUnavailable(f"{what}: HTTP {response.status_code}")
    # The peers answer {code, message} with client-facing messages (they are the owners of the decision).
    try:
        message = str(response.json().get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    raise error(message[:300] or _DEFAULT_MESSAGES[response.status_code])


async def fetch_checkout(http: httpx.AsyncClient, cart_service_url: str, *, cart_id: str | None,
                         authorization: str | None) -> dict[str, Any]:
    return await get_json(http, f"{cart_service_url.rstrip('/')}/internal/checkout",
                          params={"cart_id": cart_id or ""}, authorization=authorization, what="cart")


async def fetch_address(http: httpx.AsyncClient, users_service_url: str, *, address_id: int,
                        authorization: str | None) -> dict[str, Any]:
    return await get_json(http, f"{users_service_url.rstrip('/')}/internal/addresses/{address_id}",
                          authorization=authorization, what="users")
