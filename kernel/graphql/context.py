"""The per-request context every resolver gets: lazy DB session, lazy caller, DataLoader registry."""
from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from kernel.auth import Principal, TokenVerifier
from kernel.errors import Unauthenticated
from kernel.internal_client import PeerClient
from kernel.settings import Settings
from kernel.uow import finish

L = TypeVar("L")

# Cache-Control of a subgraph's HTTP answer, which the router's response cache reads (router/gateway.config.mjs):
# by default it is the caller's alone (max-age=0: the router never keeps it); an answer that is the same for every
# caller (kernel/response_cache.py) may be kept and shared by the router for its own TTL.
CALLER_ONLY = "private, max-age=0"
SHARED = "public"


@dataclasses.dataclass
class ServiceResources:
    """Long-lived, process-wide handles a subgraph's requests share."""
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    verifier: TokenVerifier
    # The one pooled client the process calls its peers' internal endpoints with (kernel/internal_client.py).
    # Every service has one: it opens no connection until a first call, so a service that never calls a peer
    # pays nothing for it.
    peers: PeerClient
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    async def aclose(self) -> None:
        """Close what the process opened for its requests: the peer client, each extra that has `aclose`, Redis
        and the database engine. The app's shutdown calls it, and so does a test that serves the app in process
        (without a lifespan)."""
        await self.peers.aclose()
        for extra in self.extras.values():
            if hasattr(extra, "aclose"):
                await extra.aclose()
        await self.redis.aclose()
        await self.session_factory.kw["bind"].dispose()


@dataclasses.dataclass(eq=False)
class _OperationState:
    """What one operation must not share with another: its DB session and its DataLoaders."""
    owner: RequestContext
    session: AsyncSession | None = None
    opening: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    loaders: dict[Callable[..., Any], Any] = dataclasses.field(default_factory=dict)


# The state of the operation running in this asyncio task (and the tasks it spawns, which copy it). A
# WebSocket has ONE context for all its operations, and the router multiplexes every subscription with the
# same credentials over one socket: each operation runs in its own task, so a context variable (set by the
# kernel's transaction extension when the operation starts) keeps their sessions apart. One AsyncSession
# used by two operations at once fails with "This session is provisioning a new connection; concurrent
# operations are not permitted".
_current_operation: contextvars.ContextVar[_OperationState | None] = contextvars.ContextVar(
    "nexuscart_graphql_operation", default=None)


class RequestContext:
    """Built fresh for every HTTP request; for a WebSocket, once per connection, with a session and loaders
    of its own for each operation (`begin_operation`): lazy DB session, lazy caller, DataLoader registry."""

    def __init__(self, resources: ServiceResources, request: Request | WebSocket | None,
                 authorization: str | None, client_ip: str | None = None) -> None:
        self.resources = resources
        self.request = request
        self.client_ip = client_ip
        self._authorization = authorization
        self._principal: Principal | None = None
        self._principal_resolved = False
        self._own = _OperationState(self)
        self.cacheable = True
        self.http_response: Response | None = None  # the HTTP answer's headers (None on a WebSocket)
        # Set by Strawberry from graphql-transport-ws `connection_init`; the router sends the client's
        # Authorization there too, since a WebSocket upgrade carries no per-operation headers.
        self.connection_params: dict[str, Any] | None = None

    @property
    def settings(self) -> Settings:
        return self.resources.settings

    @property
    def redis(self) -> Redis:
        return self.resources.redis

    def _state(self) -> _OperationState:
        state = _current_operation.get()
        return state if state is not None and state.owner is self else self._own

    def begin_operation(self) -> object:
        """Give the operation running in this task its own session and loaders (see `_current_operation`);
        `end_operation` with the returned handle when it is over."""
        state = _OperationState(self)
        _current_operation.set(state)
        return state

    def end_operation(self, handle: object) -> None:
        # Not a Token reset: a subscription's generator may be closed from another task (another Context).
        if _current_operation.get() is handle:
            _current_operation.set(None)

    async def session(self) -> AsyncSession:
        # Opened on first use, so a request served from Redis never checks out a connection.
        state = self._state()
        if state.session is None:
            async with state.opening:
                if state.session is None:
                    session = self.resources.session_factory()
                    # Check the connection out now, under the lock: resolvers run concurrently (two DataLoaders
                    # dispatching at once), and an AsyncSession whose connection is still being provisioned
                    # (connect, the checkout check of kernel/db.py) refuses a second statement ("concurrent
                    # operations are not permitted"). Once connected, the driver adapter serialises statements.
                    try:
                        await session.connection()
                    except BaseException:
                        await session.close()
                        raise
                    state.session = session
        return state.session

    @property
    def authorization(self) -> str | None:
        """The caller's raw Authorization value (HTTP header, or the WebSocket's connection_init payload), for
        forwarding to a peer service on the caller's behalf."""
        header = self._authorization
        if not header and isinstance(self.connection_params, dict):
            header = self.connection_params.get("authorization") or self.connection_params.get("Authorization")
        return header

    @property
    def user(self) -> Principal | None:
        """The caller, or None without a token. A bad or expired token is UNAUTHENTICATED, not anonymous."""
        if not self._principal_resolved:
            self._principal_resolved = True
            header = self.authorization
            if header:
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated("Authorization header must be 'Bearer <token>'")
                self._principal = self.resources.verifier.verify(token.strip())
        return self._principal

    def require_user(self) -> Principal:
        user = self.user
        if user is None:
            raise Unauthenticated()
        return user

    def mark_uncacheable(self) -> None:
        """This response depends on the caller: response caches must not store or share it."""
        self.cacheable = False

    def mark_shared(self) -> None:
        """This answer is the same for every caller (a response cache keyed without the caller holds it): the
        router may keep it and serve it to anyone who sends the same operation."""
        if self.http_response is not None:
            self.http_response.headers["cache-control"] = SHARED

    def loader(self, loader_class: Callable[[RequestContext], L]) -> L:
        """This request's one instance of `loader_class`, built from the context on first use: a ContextLoader,
        or any other per-request read state that is built from the context."""
        loaders = self._state().loaders
        loader = loaders.get(loader_class)
        if loader is None:
            loader = loaders[loader_class] = loader_class(self)
        return loader

    async def release_session(self) -> None:
        """For long-lived operations (subscriptions), after each event: give the connection back, and drop
        the loaders so the next event reads fresh data rather than the previous event's cached answers."""
        await self.finish(commit=False)
        self._state().loaders.clear()

    async def finish(self, *, commit: bool) -> None:
        """The edge owns the transaction (kernel.uow): commit when the operation succeeded, else roll back."""
        state = self._state()
        session, state.session = state.session, None
        if session is not None:
            await finish(session, commit=commit)


# What resolvers annotate `info` with: `info.context` is then typed as the RequestContext.
Info = strawberry.Info[RequestContext, None]
