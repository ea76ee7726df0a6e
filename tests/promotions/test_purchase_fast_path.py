"""The purchase fast path answers exactly what the GraphQL executor would, and hands everything else over."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import GraphQLClient
from tests.promotions.test_flash_sales import ISSUE, _open_sale

PLAIN = """mutation($id: ID!, $token: String!, $key: String!, $q: Int = 1) {
  purchaseFlashSale(saleId: $id, token: $token, idempotencyKey: $key, quantity: $q) {
    status remainingStock orderId order { id } } }"""
# The same selection through a fragment: the fast path does not compile fragments, so the executor answers.
VIA_EXECUTOR = """mutation($id: ID!, $token: String!, $key: String!, $q: Int = 1) {
  purchaseFlashSale(saleId: $id, token: $token, idempotencyKey: $key, quantity: $q) { ...P } }
fragment P on FlashSalePurchase { status remainingStock orderId order { id } }"""
ALIASED = """mutation Buy($id: ID!, $token: String!) {
  buy: purchaseFlashSale(saleId: $id, token: $token, idempotencyKey: "fixed-key-0001") {
    __typename s: status left: remainingStock order { __typename oid: id } } }"""


@pytest.fixture
def fast_path(apps: dict[str, Any]) -> Any:
    api: GraphQLClient = apps["promotions"]
    middleware = api.http._transport.app.app  # CorrelationMiddleware -> PurchaseFastPath
    return middleware


async def _token(api: GraphQLClient, access: str, sale_id: str) -> str:
    return (await api.ok(ISSUE, {"id": sale_id}, access))["issueFlashSaleToken"]["token"]


async def test_fast_path_and_executor_give_the_same_answers(apps: dict[str, Any], sessions: Any,
                                                             redis: Redis, make_user: Any, fast_path: Any) -> None:
    api: GraphQLClient = apps["promotions"]
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=3, limit=2)
    _, buyer = await make_user()
    before = fast_path.answered
    fast = await api.ok(PLAIN, {"id": sale["id"], "token": await _token(api, buyer, sale["id"]),
                                "key": uuid.uuid4().hex, "q": 2}, buyer)
    assert fast_path.answered == before + 1
    slow = await api.ok(VIA_EXECUTOR, {"id": sale["id"], "token": await _token(api, buyer, sale["id"]),
                                       "key": uuid.uuid4().hex}, buyer)
    assert fast_path.answered == before + 1  # the executor answered that one
    assert fast["purchaseFlashSale"]["status"] == "SUCCESS" and fast["purchaseFlashSale"]["remainingStock"] == 1
    assert fast["purchaseFlashSale"]["order"] == {"id": fast["purchaseFlashSale"]["orderId"]}
    assert slow["purchaseFlashSale"] == {"status": "LIMIT_EXCEEDED", "remainingStock": 1, "orderId": None,
                                         "order": None}
    _, other = await make_user()
    aliased = await api.ok(ALIASED, {"id": sale["id"], "token": await _token(api, other, sale["id"])}, other)
    assert fast_path.answered == before + 2
    buy = aliased["buy"]
    assert (buy["__typename"], buy["s"], buy["left"], buy["order"]["__typename"]) == (
        "FlashSalePurchase", "SUCCESS", 0, "Order")
    # A replay of the aliased document (literal idempotency key) answers the same order.
    again = await api.ok(ALIASED, {"id": sale["id"], "token": "spent.1.x"}, other)
    assert again["buy"]["order"]["oid"] == buy["order"]["oid"] and again["buy"]["s"] == "SUCCESS"


async def test_refusals_get_the_executors_errors(apps: dict[str, Any], sessions: Any, redis: Redis,
                                                 make_user: Any, fast_path: Any) -> None:
    api: GraphQLClient = apps["promotions"]
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=3, limit=2)
    _, buyer = await make_user()
    token = await _token(api, buyer, sale["id"])
    ok = {"id": sale["id"], "token": token, "key": uuid.uuid4().hex}
    before = fast_path.answered
    assert await api.error_code(PLAIN, ok) == "UNAUTHENTICATED"
    assert await api.error_code(PLAIN, ok, "not-a-jwt") == "UNAUTHENTICATED"
    assert await api.error_code(PLAIN, ok | {"id": "abc"}, buyer) == "BAD_USER_INPUT"
    assert await api.error_code(PLAIN, ok | {"id": "424242"}, buyer) == "NOT_FOUND"
    assert await api.error_code(PLAIN, ok | {"q": 0}, buyer) == "BAD_USER_INPUT"
    assert await api.error_code(PLAIN, ok | {"q": 3}, buyer) == "BAD_USER_INPUT"
    assert await api.error_code(PLAIN, ok | {"key": "short"}, buyer) == "BAD_USER_INPUT"
    body = await api.raw(PLAIN, ok | {"q": "two"}, buyer)
    assert body["errors"] and body.get("data") is None
    assert fast_path.answered == before
    # Nothing was bought by any of them.
    assert (await api.ok(PLAIN, ok, buyer))["purchaseFlashSale"]["remainingStock"] == 2


async def test_other_operations_pass_through(apps: dict[str, Any], fast_path: Any) -> None:
    api: GraphQLClient = apps["promotions"]
    before = fast_path.answered
    data = await api.ok("{ flashSales(first: 1) { id } }")
    assert data == {"flashSales": []}
    raw = await api.http.post("/graphql", content=b"not json", headers={"content-type": "application/json"})
    assert raw.status_code == 400
    assert fast_path.answered == before
