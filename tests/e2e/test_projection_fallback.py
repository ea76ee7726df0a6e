"""Reads that don't wait for a projection: the cart answers for a variant its event-fed projections have not
heard of yet by asking catalog and inventory, so a product listed (and stocked) a moment ago can be added to a
cart at once, through the router, without waiting for the events; and a refusal for stock is checked with
inventory, so a restock a moment ago is not refused."""
from __future__ import annotations

import uuid

from subgraphs.cart.repository import stock_key
from tests.e2e.test_commerce import (
    ADD_TO_CART,
    ADJUST_STOCK,
    CREATE_CATEGORY,
    CREATE_PRODUCT,
    CREATE_WAREHOUSE,
    eventually,
    stocked_variant,
)


async def test_a_product_stocked_a_moment_ago_goes_straight_into_a_cart(router, token_for) -> None:
    admin = token_for("ADMIN")
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": f"Fresh {uuid.uuid4().hex[:6]}"}},
                                admin))["createCategory"]["id"]
    warehouse = (await router.ok(CREATE_WAREHOUSE, {"code": f"WH-{uuid.uuid4().hex[:6]}", "name": "Fresh"},
                                 admin))["createWarehouse"]["id"]
    product = (await router.ok(CREATE_PRODUCT, {"input": {
        "name": f"Fresh Widget {uuid.uuid4().hex[:6]}", "categoryId": category,
        "variants": [{"sku": f"FRESH-{uuid.uuid4().hex[:10]}", "price": "12.50", "currency": "USD"}]}},
        admin))["createProduct"]
    variant_id = product["variants"][0]["id"]

    async def stocked() -> bool:
        # Inventory too learns variants from product.created; until it has, the adjustment is NOT_FOUND.
        body = await router.raw(ADJUST_STOCK, {"v": variant_id, "w": warehouse, "d": 5}, admin)
        if body.get("errors"):
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
            return False
        return True

    await eventually(stocked, what="inventory to learn the new variant")
    # At once: inventory.stock_changed (and maybe product.created) is still on its way to the cart.
    cart = (await router.ok(ADD_TO_CART, {"v": variant_id, "q": 2}, token_for("CUSTOMER")))["addToCart"]
    assert cart["itemCount"] == 2
    assert cart["subtotal"] == {"amount": "25.00", "currency": "USD"}


async def test_a_refusal_for_stock_is_checked_with_inventory_when_the_projection_lags_a_restock(
        router, token_for, redis) -> None:
    admin = token_for("ADMIN")
    _, variant_id = await stocked_variant(router, admin, 5, price="3.00")

    async def projected() -> bool:
        return await redis.get(stock_key(variant_id)) == b"5"

    await eventually(projected, what="the cart's stock projection to hear of the 5 units")
    # The projection still says what it said before a restock whose event has not arrived yet.
    await redis.set(stock_key(variant_id), 0)

    cart = (await router.ok(ADD_TO_CART, {"v": variant_id, "q": 2}, token_for("CUSTOMER")))["addToCart"]

    assert cart["itemCount"] == 2
    assert await redis.get(stock_key(variant_id)) == b"5"  # and the projection learned inventory's figure
    # more than inventory has is still refused, and nothing is added
    refused = await router.raw(ADD_TO_CART, {"v": variant_id, "q": 9}, token_for("CUSTOMER"))
    assert refused["errors"][0]["extensions"]["code"] == "OUT_OF_STOCK", refused
