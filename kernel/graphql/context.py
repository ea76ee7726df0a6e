"""The per-request context every resolver gets: lazy DB session, lazy caller, DataLoader registry."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.websockets import WebSocket

from kernel.auth import Principal, TokenVerifier
from kernel.errors import Unauthenticated
from kernel.settings import Settings
from kernel.uow import finish

L = TypeVar("L")


@dataclasses.dataclass
class ServiceResources:
    """Long-lived, process-wide handles a subgraph's requests share."""
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    verifier: TokenVerifier
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


class RequestContext:
    """Built fresh for every HTTP request (for a WebSocket, once per connection; long-lived operations
    call `release_session`): lazy DB session, lazy caller, and a DataLoader registry."""

    def __init__(self, resources: ServiceResources, request: Request | WebSocket | None,
                 authorization: str | None, client_ip: str | None = None) -> None:
        self.resources = resources
        self.request = request
        self.client_ip = client_ip
        self._authorization = authorization
        self._principal: Principal | None = None
        self._principal_resolved = False
        self._session: AsyncSession | None = None
        self._loaders: dict[Callable[..., Any], Any] = {}
        self.cacheable = True
        # Set by Strawberry from graphql-transport-ws `connection_init`; the router sends the client's
        # Authorization there too, since a WebSocket upgrade carries no per-operation headers.
        self.connection_params: dict[str, Any] | None = None

    @property
    def settings(self) -> Settings:
        return self.resources.settings

    @property
    def redis(self) -> Redis:
        return self.resources.redis

    async def session(self) -> AsyncSession:
        # Opened on first use, so a request served from Redis never checks out a connection.
        if self._session is None:
            self._session = self.resources.session_factory()
        return self._session

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

    def loader(self, loader_class: Callable[[RequestContext], L]) -> L:
        """This request's one instance of `loader_class`, built from the context on first use: a ContextLoader,
        or any other per-request read state that is built from the context."""
        loader = self._loaders.get(loader_class)
        if loader is None:
            loader = self._loaders[loader_class] = loader_class(self)
        return loader

    async def release_session(self) -> None:
        """For long-lived operations (subscriptions): give the connection back between events."""
        await self.finish(commit=False)

    async def finish(self, *, commit: bool) -> None:
        """The edge owns the transaction (kernel.uow): commit when the operation succeeded, else roll back."""
        session, self._session = self._session, None
        if session is not None:
            await finish(session, commit=commit)


# What resolvers annotate `info` with: `info.context` is then typed as the RequestContext.
Info = strawberry.Info[RequestContext, None]
