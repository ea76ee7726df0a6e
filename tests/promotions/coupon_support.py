"""Coupon test helpers shared by tests/promotions, tests/cart and tests/orders: the real promotions app
(in-process for GraphQL, and served over real HTTP on a free port for the cart's and orders' PeerClients),
and a createCoupon helper. Plain helpers, not fixtures: each test module builds the fixtures it needs."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from kernel.settings import Settings
from tests.conftest import GraphQLClient, served_in_process

COUPON_FIELDS = """id code kind value currency minSubtotal startsAt endsAt usageLimit perUserLimit timesRedeemed
  remaining active createdAt"""
CREATE_COUPON = f"mutation($input: CreateCouponInput!) {{ createCoupon(input: $input) {{ {COUPON_FIELDS} }} }}"
COUPON = f"query($code: String!) {{ coupon(code: $code) {{ {COUPON_FIELDS} }} }}"
COUPONS = f"query($first: Int, $after: ID) {{ coupons(first: $first, after: $after) {{ {COUPON_FIELDS} }} }}"


def new_code(prefix: str = "C") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10].upper()}"


def coupon_input(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"code": new_code(), "kind": "PERCENT", "value": "10"}
    value.update(overrides)
    return value


@contextlib.asynccontextmanager
async def promotions_app(settings: Settings) -> AsyncIterator[tuple[Any, GraphQLClient]]:
    """The promotions ASGI app and an in-process GraphQL client on it. Its lifespan does not run under
    ASGITransport (nor under serve_locally), so what it would close at shutdown is closed here."""
    from subgraphs.promotions.app import build_app
    app = build_app(settings)
    async with served_in_process(app, "http://promotions") as http:
        yield app, GraphQLClient(http, "/graphql")


async def create_coupon(api: GraphQLClient, admin_token: str, **overrides: Any) -> dict[str, Any]:
    return (await api.ok(CREATE_COUPON, {"input": coupon_input(**overrides)}, admin_token))["createCoupon"]
