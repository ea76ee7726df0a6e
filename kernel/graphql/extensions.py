"""Schema extensions every subgraph runs: the transaction edge and the refusal of text Postgres cannot store."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, StringValueNode, Visitor, visit
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from kernel.errors import BadUserInput, to_client_error
from kernel.graphql.context import RequestContext


class TransactionExtension(SchemaExtension):
    """Commits the request's session when the operation produced no errors, else rolls back."""

    async def on_operation(self) -> Any:
        context = self.execution_context.context
        if not isinstance(context, RequestContext):
            yield
            return
        # Its own session and loaders: a WebSocket's operations share one context and run concurrently.
        token = context.begin_operation()
        try:
            try:
                yield
            except BaseException:
                # Cancelled (a subscriber left) or failed outside execution: the connection goes back anyway.
                await context.finish(commit=False)
                raise
            result = self.execution_context.result
            ok = not (result is not None and getattr(result, "errors", None))
            try:
                await context.finish(commit=ok)
            except Exception as exc:  # noqa: BLE001 - a failed commit must surface as an error, never as success
                if result is not None:
                    result.data = None
                    # Raised after Strawberry mapped the operation's errors, so it is mapped here.
                    result.errors = [to_client_error(GraphQLError("commit failed", original_error=exc))]
        finally:
            context.end_operation(token)

    async def on_stream_result(self, result: Any) -> Any:
        yield
        context = self.execution_context.context
        if isinstance(context, RequestContext) and self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            # A subscription lives for hours: each event's reads are done once its result is built, so the
            # connection goes back to the pool (1,000 subscribers must not hold 1,000 connections).
            await context.release_session()


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
