"""The federated schema every subgraph builds: error mapping in one place, the kernel's extensions first."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLSchema
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from kernel.errors import to_client_error
from kernel.graphql.extensions import RejectUnstorableText, TransactionExtension
from kernel.graphql.scopes import PartnerScopes


class NexusSchema(strawberry.federation.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # The one place errors become client errors (kernel/errors.py): Strawberry calls this with the
        # result's own error list on every path (parse, validation, execution, each subscription event),
        # so mapping in place gives them all stable codes and masks internals.
        errors[:] = [to_client_error(e) for e in errors]

    @property
    def graphql_schema(self) -> GraphQLSchema:
        """The graphql-core schema Strawberry built, which it keeps under a private name only."""
        return self._schema


def build_schema(*, query: type, mutation: type | None = None, subscription: type | None = None,
                 types: Sequence[type] = (), extensions: Sequence[Any] = ()) -> NexusSchema:
    """`extensions` run inside the kernel's error mapping and transaction handling."""
    return NexusSchema(
        query=query, mutation=mutation, subscription=subscription, types=list(types),
        federation_version="2.9",
        extensions=[TransactionExtension, lambda: ParserCache(maxsize=512),
                    lambda: ValidationCache(maxsize=512), RejectUnstorableText, PartnerScopes, *extensions],
        config=StrawberryConfig(auto_camel_case=True),
    )
