"""A compiled path for the hottest operation: `purchaseFlashSale` selecting only its scalar fields.

At a sale's start thousands of identical mutations arrive per second, and the general GraphQL executor
(Strawberry: validation, per-field resolution, extensions) costs several times the purchase itself (the Lua
script). This ASGI wrapper recognises a request whose document is exactly one `purchaseFlashSale` field with
a plain selection, compiles that document once (parsed AND validated against the real schema), and then
answers every request with the same text by calling the same service function the resolver calls.

It never answers anything else, and never answers an error: on any refusal before the purchase (no or bad
token, malformed id, unknown sale, bad quantity, a variable of the wrong type) it hands the untouched
request to Strawberry, which produces the usual error with its `extensions.code`. Those refusals all happen
before the Lua script, so the request is executed exactly once either way.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    IntValueNode,
    OperationDefinitionNode,
    StringValueNode,
    VariableNode,
    parse,
    validate,
)

from kernel.errors import AppError
from kernel.graphql import RequestContext, ServiceResources
from kernel.ids import parse_id
from subgraphs.promotions import flash_sales

log = logging.getLogger("nexuscart.promotions.fast_path")

_SCALARS = {"status", "remainingStock", "orderId", "__typename"}
_ARGUMENTS = {"saleId", "token", "idempotencyKey", "quantity"}
_MAX_BODY = 16 * 1024


@dataclasses.dataclass(frozen=True)
class CompiledPurchase:
    response_key: str                   # the field's alias or name
    arguments: dict[str, Any]           # argument -> ("var", name) | ("lit", value)
    variable_defaults: dict[str, Any]
    fields: tuple[tuple[str, str], ...]  # (response key, field name) of the payload's scalars
    order_fields: tuple[tuple[str, str], ...] | None  # selection under `order`, if any


def _compile(schema: Any, query: str) -> CompiledPurchase | None:
    try:
        document: DocumentNode = parse(query, no_location=True)
    except GraphQLError:
        return None
    if len(document.definitions) != 1 or not isinstance(document.definitions[0], OperationDefinitionNode):
        return None
    operation = document.definitions[0]
    if operation.operation.value != "mutation" or operation.directives or len(operation.selection_set.selections) != 1:
        return None
    field = operation.selection_set.selections[0]
    if not isinstance(field, FieldNode) or field.name.value != "purchaseFlashSale" or field.directives:
        return None
    if validate(schema, document):  # invalid documents get Strawberry's own errors
        return None
    arguments: dict[str, Any] = {}
    for argument in field.arguments or ():  # graphql-core types the parsed tuples as Optional
        name, value = argument.name.value, argument.value
        if name not in _ARGUMENTS:
            return None
        if isinstance(value, VariableNode):
            arguments[name] = ("var", value.name.value)
        elif isinstance(value, StringValueNode):
            arguments[name] = ("lit", value.value)
        elif isinstance(value, IntValueNode):
            arguments[name] = ("lit", int(value.value))
        else:
            return None
    defaults: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        if definition.default_value is not None:
            if not isinstance(definition.default_value, (IntValueNode, StringValueNode)):
                return None
            raw = definition.default_value.value
            defaults[definition.variable.name.value] = int(raw) if isinstance(definition.default_value,
                                                                              IntValueNode) else raw
    fields: list[tuple[str, str]] = []
    order_fields: tuple[tuple[str, str], ...] | None = None
    for selection in field.selection_set.selections if field.selection_set else ():
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        key = selection.alias.value if selection.alias else selection.name.value
        if selection.name.value in _SCALARS and selection.selection_set is None:
            fields.append((key, selection.name.value))
        elif selection.name.value == "order" and selection.selection_set is not None:
            inner = []
            for sub in selection.selection_set.selections:
                if (not isinstance(sub, FieldNode) or sub.directives or sub.arguments or sub.selection_set
                        or sub.name.value not in ("id", "__typename")):
                    return None
                inner.append((sub.alias.value if sub.alias else sub.name.value, sub.name.value))
            if order_fields is not None:
                return None
            fields.append((key, "order"))
            order_fields = tuple(inner)
        else:
            return None
    return CompiledPurchase(response_key=field.alias.value if field.alias else field.name.value,
                            arguments=arguments, variable_defaults=defaults, fields=tuple(fields),
                            order_fields=order_fields)


class _Fallback(Exception):
    """Let Strawberry answer this request."""


class PurchaseFastPath:
    """ASGI wrapper of the promotions Starlette app (inside the correlation/metrics middleware)."""

    def __init__(self, app: Any, resources: ServiceResources, graphql_schema: Any) -> None:
        self.app = app
        self.resources = resources
        self.schema = graphql_schema
        self._plans: OrderedDict[str, CompiledPurchase | None] = OrderedDict()
        self.answered = 0  # requests this path answered itself (the rest went to the executor)

    @property
    def state(self) -> Any:
        return self.app.state

    def _plan(self, query: str) -> CompiledPurchase | None:
        if query in self._plans:
            return self._plans[query]
        plan = _compile(self.schema, query) if "purchaseFlashSale" in query else None
        self._plans[query] = plan
        if len(self._plans) > 256:
            self._plans.popitem(last=False)
        return plan

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # A partner's request takes the full GraphQL path so its key's scopes are checked there.
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/graphql" \
                or any(name == b"x-nexuscart-partner" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body") or size > _MAX_BODY:
                break
        body = b"".join(chunks)
        more = size > _MAX_BODY
        answer = None if more else await self._try(scope, body)
        if answer is not None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                                    (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})
            self.answered += 1
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)

    async def _try(self, scope: dict, body: bytes) -> bytes | None:
        try:
            request = orjson.loads(body)
            query = request.get("query") if isinstance(request, dict) else None
            if not isinstance(query, str):
                return None
            plan = self._plan(query)
            if plan is None:
                return None
            variables = request.get("variables") or {}
            if not isinstance(variables, dict):
                return None
            return await self._execute(scope, plan, variables)
        except _Fallback:
            return None
        except AppError:
            return None  # Strawberry raises the same error again, with the usual shape and code
        except Exception:  # Strawberry answers (and masks) it; a purchase replays by its key
            log.exception("purchase fast path failed; answering through the executor")
            return None

    async def _execute(self, scope: dict, plan: CompiledPurchase, variables: dict[str, Any]) -> bytes:
        def argument(name: str, kind: type, default: Any = None) -> Any:
            source = plan.arguments.get(name)
            if source is None:
                return default
            value = variables.get(source[1], plan.variable_defaults.get(source[1], default)) \
                if source[0] == "var" else source[1]
            if value is None:
                return default
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise _Fallback()
            if kind is str and not isinstance(value, str):
                if isinstance(value, int) and not isinstance(value, bool) and name == "saleId":
                    return str(value)
                raise _Fallback()
            return value

        headers = dict(scope.get("headers") or ())
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        # The caller and the session as every request gets them; a refusal (no or bad token) is an AppError,
        # which sends the request through Strawberry for its usual answer.
        context = RequestContext(self.resources, None, authorization)
        caller = context.require_user()
        sale_id = parse_id(argument("saleId", str), field="saleId")
        purchase_token, key = argument("token", str), argument("idempotencyKey", str)
        quantity = argument("quantity", int, 1)  # an explicit null also means the default, as in the schema
        if purchase_token is None or key is None:
            raise _Fallback()
        forwarded = headers.get(b"x-forwarded-for")
        peer = scope.get("client")
        try:
            result = await flash_sales.purchase_in_sale(
                context.session, context.redis, context.settings, self.resources.peers,
                caller=caller, purchase_in=flash_sales.PurchaseIn(sale_id=sale_id, token=purchase_token,
                                                                  quantity=quantity, idempotency_key=key),
                forwarded_for=forwarded.decode("latin-1") if forwarded else None, peer=peer[0] if peer else None,
                authorization=authorization)
        finally:
            await context.finish(commit=False)  # the purchase wrote nothing in Postgres
        order_id = str(result.order_id) if result.order_id else None
        payload: dict[str, Any] = {}
        for response_key, name in plan.fields:
            if name == "status":
                payload[response_key] = result.status
            elif name == "remainingStock":
                payload[response_key] = result.remaining_stock
            elif name == "orderId":
                payload[response_key] = order_id
            elif name == "__typename":
                payload[response_key] = "FlashSalePurchase"
            else:  # order
                payload[response_key] = None if order_id is None else {
                    k: (order_id if n == "id" else "Order") for k, n in plan.order_fields or ()}
        return orjson.dumps({"data": {plan.response_key: payload}})
