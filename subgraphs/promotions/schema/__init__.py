"""The promotions subgraph's GraphQL schema, one module per area: flash_sales.py and coupons.py each
contribute a Query and a Mutation part (and flash sales a Subscription); they are merged here."""
from __future__ import annotations

from strawberry.tools import merge_types

from kernel.graphql import build_schema
from subgraphs.promotions.schema import coupons, flash_sales

Query = merge_types("Query", (flash_sales.FlashSaleQuery, coupons.CouponQuery))
Mutation = merge_types("Mutation", (flash_sales.FlashSaleMutation, coupons.CouponMutation))

schema = build_schema(query=Query, mutation=Mutation, subscription=flash_sales.FlashSaleSubscription,
                      types=[*flash_sales.ENTITY_TYPES, *coupons.ENTITY_TYPES])
