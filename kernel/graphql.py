"""Strawberry plumbing shared by every subgraph: per-request context, DataLoader base, extensions, schema."""
from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import orjson
import strawberry
from graphql import GraphQLError, StringValueNode, Visitor, visit
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig

from kernel.auth import Principal, TokenVerifier
from kernel.db import run_callbacks, take_after_commit
from kernel.errors import BadUserInput, Unauthenticated, to_client_error
from kernel.settings import Settings

log = logging.getLogger("nexuscart.graphql")

K = TypeVar("K")
V = TypeVar("V")
L = TypeVar("L", bound="ContextLoader[Any, Any]")


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
        self._loaders: dict[type, Any] = {}
        self.cacheable = True
        self._after_commit: list[Callable[[], Awaitable[Any]]] = []
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

    def loader(self, loader_class: type[L]) -> L:
        loader = self._loaders.get(loader_class)
        if loader is None:
            loader = self._loaders[loader_class] = loader_class(self)
        return loader

    def on_commit(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """Run `callback` once this operation's transaction has committed (e.g. cache invalidation,
        which must not happen before the new state is visible)."""
        self._after_commit.append(callback)

    async def release_session(self) -> None:
        """For long-lived operations (subscriptions): give the connection back between events."""
        await self.finish(commit=False)

    async def finish(self, *, commit: bool) -> None:
        """The edge owns the transaction: commit when the operation succeeded, otherwise roll back."""
        session, self._session = self._session, None
        callbacks, self._after_commit = self._after_commit, []
        if session is None:
            return
        callbacks += take_after_commit(session)
        try:
            if commit:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()
        if commit:
            await run_callbacks(callbacks)


class ContextLoader(DataLoader[K, V], Generic[K, V], metaclass=abc.ABCMeta):
    """A DataLoader bound to one request's context; subclasses implement `batch_load`."""

    def __init__(self, context: RequestContext) -> None:
        self.context = context
        super().__init__(load_fn=self.batch_load)

    @abc.abstractmethod
    async def batch_load(self, keys: list[K]) -> Sequence[V | BaseException]:
        """One query for all `keys`; results in the same order, None (or an exception) where missing."""


def context_of(info: strawberry.Info) -> RequestContext:
    return info.context


class TransactionExtension(SchemaExtension):
    """Commits the request's session when the operation produced no errors, else rolls back."""

    async def on_operation(self) -> Any:  # type: ignore[override]
        yield
        context = self.execution_context.context
        if not isinstance(context, RequestContext):
            return
        result = self.execution_context.result
        ok = not (result is not None and getattr(result, "errors", None))
        try:
            await context.finish(commit=ok)
        except Exception as exc:  # a failed commit must surface as an error, never as success
            if result is not None:
                result.data = None
                # Raised after Strawberry mapped the operation's errors, so it is mapped here.
                result.errors = [to_client_error(GraphQLError("commit failed", original_error=exc))]


def _unstorable_text(text: str) -> bool:
    """PostgreSQL text holds neither U+0000 nor lone surrogates (which are not valid UTF-8)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _has_unstorable_text(value: Any) -> bool:
    stack = [value]  # iterative: client-controlled nesting must not exhaust the interpreter stack
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _unstorable_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


class _StringLiterals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[str] = []

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        self.values.append(node.value)


class RejectUnstorableText(SchemaExtension):
    """Text PostgreSQL cannot store (U+0000, lone surrogates) would fail deep in SQL as an internal error;
    it is refused up front, for every field of every subgraph, as BAD_USER_INPUT."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        query = execution.query or ""
        bad = _has_unstorable_text(execution.variables) or _unstorable_text(query)
        if not bad and "\\u" in query and execution.graphql_document is not None:
            # Only escapes (\u0000, \u{0}) put such characters into literals: walk the parsed strings then.
            literals = _StringLiterals()
            visit(execution.graphql_document, literals)
            bad = any(_unstorable_text(v) for v in literals.values)
        if bad:
            raise BadUserInput("Text input must not contain U+0000 or unpaired surrogates")
        yield


class NexusSchema(strawberry.federation.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # The one place errors become client errors (kernel/errors.py): Strawberry calls this with the
        # result's own error list on every path (parse, validation, execution, each subscription event),
        # so mapping in place gives them all stable codes and masks internals.
        errors[:] = [to_client_error(e) for e in errors]


def build_schema(*, query: type, mutation: type | None = None, subscription: type | None = None,
                 types: Sequence[type] = (), extensions: Sequence[Any] = ()) -> NexusSchema:
    """`extensions` run inside the kernel's error mapping and transaction handling."""
    return NexusSchema(
        query=query, mutation=mutation, subscription=subscription, types=list(types),
        federation_version="2.9",
        extensions=[TransactionExtension, lambda: ParserCache(maxsize=512),
                    lambda: ValidationCache(maxsize=512), RejectUnstorableText, *extensions],
        config=StrawberryConfig(auto_camel_case=True),
    )


class GraphQLEndpoint(GraphQL):
    """Strawberry's ASGI view with our context and orjson encoding."""

    def __init__(self, schema: NexusSchema, resources: ServiceResources, **kwargs: Any) -> None:
        super().__init__(schema, **kwargs)
        self.resources = resources

    async def get_context(self, request: Request | WebSocket, response: Any) -> RequestContext:  # type: ignore[override]
        authorization = request.headers.get("authorization")
        client_ip = request.headers.get("x-forwarded-for", "").split(",")[0].strip() or (
            request.client.host if request.client else None)
        return RequestContext(self.resources, request, authorization, client_ip)

    def decode_json(self, data: str | bytes) -> object:
        # orjson bounds nesting depth (a JSONDecodeError, answered 400) where json.loads would raise
        # RecursionError out of the app as a bare 500.
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: Strawberry sends bytes as binary WebSocket frames, which graphql-transport-ws
        # clients (the router among them) reject.
        return orjson.dumps(data).decode()

