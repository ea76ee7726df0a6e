"""Recommendations end to end, through the router and real processes: products reach the subgraph through the
catalog's and inventory's events; a shopper's views change recommendedForYou at once and favour that category;
a guest session gets recommendations; bought, out-of-stock and deleted products disappear; the product lists are
Products whose cards (slug, name, brand, price) recommendations answers itself and whose other fields the catalog
resolves; bad input is refused with its code."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from nexuscart.infra import free_port
from tests.e2e.test_commerce import (
    ADD_TO_CART,
    eventually,
    place_order,
    stocked_variant,
    wait_for_status,
)
from tests.e2e.test_router_limits import private_router

TRACK = "mutation($input: TrackInteractionInput!) { trackInteraction(input: $input) }"
FOR_YOU = "query($first: Int, $s: String) { recommendedForYou(first: $first, sessionId: $s) { id name } }"
LISTS = """query($id: ID!) { product(id: $id) { id similarProducts(first: 5) { id name }
  frequentlyBoughtTogether(first: 5) { id name } } }"""
CART_RECOMMENDATIONS = "query { cart { items { productId } recommendations(first: 5) { id name } } }"
DELETE_PRODUCT = "mutation($id: ID!) { deleteProduct(id: $id) }"
ADJUST = """mutation($v: ID!, $w: ID!, $d: Int!) { adjustStock(variantId: $v, warehouseId: $w, delta: $d,
  reason: "e2e") { onHand } }"""


async def _view(router, token: str | None, product_id: str, **extra: str) -> None:
    """Track one view, at once: a product whose product.created has not reached recommendations yet is checked
    with the catalog."""
    assert (await router.ok(TRACK, {"input": {"productId": product_id, "kind": "VIEW", **extra}},
                            token))["trackInteraction"] is True


def _ids(body: dict) -> list[str]:
    return [p["id"] for p in body["recommendedForYou"]]


async def test_views_purchases_stock_and_deletion_shape_recommendations(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    _, ada = await make_user()
    viewed, sibling = [await stocked_variant(router, admin, 5) for _ in range(2)]

    # ada views one: the next answer already reflects it, and the product lists resolve in the catalog
    await _view(router, ada, viewed[0])

    async def recommends(token: str | None, wanted: str, **variables: str) -> dict | None:
        body = await router.ok(FOR_YOU, {"first": 50, **variables}, token)
        return body if wanted in _ids(body) else None

    body = await eventually(lambda: recommends(ada, sibling[0]), what="the sibling to be recommendable")
    names = {p["id"]: p["name"] for p in body["recommendedForYou"]}
    assert names[sibling[0]].startswith("Spine Widget"), "resolved by the catalog through the router"
    assert _ids(body)[-1] == viewed[0] or viewed[0] not in names, "what she just viewed comes last"
    lists = (await router.ok(LISTS, {"id": viewed[0]}))["product"]
    assert all(p["name"] for p in lists["similarProducts"] + lists["frequentlyBoughtTogether"])

    # A guest with a session gets recommendations too; without one, tracking is UNAUTHENTICATED
    session_id = f"guest-{uuid.uuid4().hex[:12]}"
    await _view(router, None, viewed[0], sessionId=session_id)
    assert (await router.ok(FOR_YOU, {"first": 5, "s": session_id}))["recommendedForYou"]
    assert await router.error_code(TRACK, {"input": {"productId": viewed[0], "kind": "VIEW"}}) == "UNAUTHENTICATED"

    # ada buys the sibling: once order.paid is consumed, it is never recommended to her
    await router.ok(ADD_TO_CART, {"cartId": None, "v": sibling[1], "q": 1}, ada)
    # Cart.recommendations: the cart's lines reach recommendations through the router (@requires), the answer
    # never holds the cart's own products, and the catalog resolves each one
    cart = (await router.ok(CART_RECOMMENDATIONS, {}, ada))["cart"]
    assert [item["productId"] for item in cart["items"]] == [sibling[0]]
    assert sibling[0] not in {p["id"] for p in cart["recommendations"]}
    assert all(p["name"] for p in cart["recommendations"])
    order = await place_order(router, ada)
    await wait_for_status(router, ada, order["id"], {"PAID"})

    async def bought_gone() -> bool:
        return sibling[0] not in _ids(await router.ok(FOR_YOU, {"first": 50}, ada))

    await eventually(bought_gone, what="order.paid to exclude the bought product")

    # Out of stock (inventory's event) and deleted (catalog's event): never shown to anyone
    sold_out = await stocked_variant(router, admin, 1)
    deleted = await stocked_variant(router, admin, 1)
    _, bob = await make_user()
    for product in (sold_out, deleted):
        await _view(router, bob, product[0])
    await eventually(lambda: recommends(bob, sold_out[0]), what="the product to be recommendable")
    await eventually(lambda: recommends(bob, deleted[0]), what="the product to be recommendable")
    await router.ok(ADD_TO_CART, {"cartId": None, "v": sold_out[1], "q": 1}, bob)
    await wait_for_status(router, bob, (await place_order(router, bob))["id"], {"PAID"})
    await router.ok(DELETE_PRODUCT, {"id": deleted[0]}, admin)

    async def both_gone() -> bool:
        # Until recommendations has consumed product.deleted, the catalog already answers null for the deleted
        # product (a null in the list, with an error): that answer is not yet the one awaited.
        body = await router.raw(FOR_YOU, {"first": 50}, bob)
        shown = (body.get("data") or {}).get("recommendedForYou")
        if shown is None or None in shown:
            return False
        return not set(_ids(body["data"])) & {sold_out[0], deleted[0]}

    await eventually(both_gone, what="stock_changed and product.deleted to remove the products")
    assert await router.error_code(TRACK, {"input": {"productId": deleted[0], "kind": "VIEW"}}, bob) == "NOT_FOUND"


async def test_bad_input_through_the_router(router, make_user) -> None:
    _, token = await make_user()
    assert await router.error_code(FOR_YOU, {"first": 0}, token) == "BAD_USER_INPUT"
    assert await router.error_code(FOR_YOU, {"first": 51}, token) == "BAD_USER_INPUT"
    assert await router.error_code(TRACK, {"input": {"productId": "123456789", "kind": "VIEW"}},
                                   token) == "NOT_FOUND"
    assert await router.error_code(TRACK, {"input": {"productId": "1", "kind": "VIEW",
                                                     "sessionId": "not valid!"}}) == "BAD_USER_INPUT"


async def test_a_view_of_a_product_recommendations_has_not_heard_of_is_checked_with_the_catalog(
        router, make_user, db_admin) -> None:
    _, admin = await make_user("ADMIN")
    _, ada = await make_user()
    product_id, _ = await stocked_variant(router, admin, 2)

    async def projected() -> bool:
        return await db_admin.fetchval("SELECT count(*) FROM recommendations.products WHERE product_id = $1",
                                       int(product_id)) == 1

    await eventually(projected, what="recommendations to consume product.created")
    # As if product.created had not reached recommendations yet (it has, and will not come again).
    await db_admin.execute("DELETE FROM recommendations.products WHERE product_id = $1", int(product_id))

    await _view(router, ada, product_id)

    # a product the catalog does not sell is still NOT_FOUND
    assert await router.error_code(TRACK, {"input": {"productId": "9" * 15, "kind": "VIEW"}}, ada) == "NOT_FOUND"


CARDS = """query { recommendedForYou(first: 50) { id slug name brand minPrice { amount currency } } }"""
RENAME = "mutation($id: ID!, $name: String!) { updateProduct(id: $id, input: {name: $name}) { id } }"


@pytest.fixture
def router_without_catalog(platform) -> Iterator[str]:
    """A second router over the same subgraphs, except that nothing listens where it looks for the catalog."""
    with private_router({"ROUTER_RATE_LIMIT_PER_MINUTE": "0",
                         **{f"NEXUSCART_{name.upper()}_URL": platform.subgraph_url(name)
                            for name in platform.config.subgraph_ports},
                         "NEXUSCART_CATALOG_URL": f"http://127.0.0.1:{free_port()}/graphql"}) as url:
        yield url


async def test_a_list_shows_its_cards_from_recommendations_alone_and_follows_a_rename(
        router, router_without_catalog, make_user) -> None:
    """A list's cards (slug, name, brand, price) come from recommendations' own copy of the catalog: the router
    asks catalog nothing for them (they are shown even while catalog is unreachable), and a rename reaches them
    through product.updated."""
    _, admin = await make_user("ADMIN")
    _, ada = await make_user()
    product_id, _ = await stocked_variant(router, admin, 3, price="31.50")
    await _view(router, ada, product_id)

    async def card(name_wanted: str | None = None) -> dict | None:
        cards = {p["id"]: p for p in (await router.ok(CARDS, token=ada))["recommendedForYou"]}
        found = cards.get(product_id)
        return found if found and (name_wanted is None or found["name"] == name_wanted) else None

    shown = await eventually(card, what="the viewed product to be recommended")
    assert shown["name"].startswith("Spine Widget") and shown["slug"]
    assert shown["minPrice"] == {"amount": "31.50", "currency": "USD"}

    renamed = f"Renamed Widget {uuid.uuid4().hex[:6]}"
    await router.ok(RENAME, {"id": product_id, "name": renamed}, admin)
    await eventually(lambda: card(renamed), what="the rename to reach recommendations' cards")

    # `no-cache`: past the router's response cache, whose rewrite of the document (a `__typename` in every
    # selection) makes Hive Router's planner ask catalog for `minPrice { __typename }` (router/README.md).
    uncached = {"authorization": f"Bearer {ada}", "cache-control": "no-cache"}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(router_without_catalog, json={"query": CARDS}, headers=uncached)
        body = response.json()
        assert "errors" not in body, body
        assert {p["id"]: p["name"] for p in body["data"]["recommendedForYou"]}[product_id] == renamed
        # any other field is still the catalog's: unreachable here
        response = await http.post(router_without_catalog,
                                   json={"query": "{ recommendedForYou(first: 1) { id description } }"},
                                   headers=uncached)
        assert response.json()["errors"][0]["extensions"]["serviceName"] == "catalog"
