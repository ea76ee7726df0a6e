"""Strawberry plumbing every subgraph shares, one job a module:

- context.py     ServiceResources, the per-request RequestContext (session, caller, loaders), the `Info` alias
- loaders.py     ContextLoader, the DataLoader base bound to one request
- extensions.py  the transaction edge (kernel.uow) and the refusal of text Postgres cannot store
- schema.py      NexusSchema / build_schema: error mapping in one place (kernel/errors.py)
- endpoint.py    the ASGI view (context getter, orjson)
- types.py       GraphQL types shared across subgraphs (Money, PageInfo, PostalAddressInput)
"""
from kernel.graphql.context import Info, RequestContext, ServiceResources
from kernel.graphql.endpoint import GraphQLEndpoint
from kernel.graphql.loaders import ContextLoader
from kernel.graphql.schema import NexusSchema, build_schema
from kernel.graphql.types import Money, PageInfo, PostalAddressInput

__all__ = ["ContextLoader", "GraphQLEndpoint", "Info", "Money", "NexusSchema", "PageInfo", "PostalAddressInput",
           "RequestContext", "ServiceResources", "build_schema"]
