"""Partner scopes, checked where the data is: every subgraph refuses an operation of a partner API key that
lacks the scope `<subgraph>:read` (queries, subscriptions, `_entities`) or `<subgraph>:write` (mutations).

The router verifies the key (router/partners.mjs) and tells the subgraphs who is calling in the
`x-nexuscart-partner` header, a short-lived RS256 token only the platform's key can sign; a client's own
header of that name is never forwarded. A request without it is a first-party one (a user's Authorization, or
anonymous) and is not scope-checked. The router splits a query per subgraph, so a query that spans a granted
and a refused subgraph answers the granted fields and FORBIDDEN for the others."""
from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from kernel.auth import PARTNER_HEADER
from kernel.graphql.context import RequestContext


def required_scope(service: str, operation_type: OperationType) -> str:
    return f"{service}:{'write' if operation_type is OperationType.MUTATION else 'read'}"


class PartnerScopes(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        request = context.request if isinstance(context, RequestContext) else None
        credential = request.headers.get(PARTNER_HEADER) if request is not None else None
        if credential:
            partner = context.resources.verifier.verify_partner(credential)
            partner.require_scope(required_scope(context.settings.service_name,
                                                 self.execution_context.operation_type))
        yield
