"""Reads that don't wait for a projection: inventory and the cart answer for a variant their event-fed
projections have not heard of yet by asking its owners, so a product listed a moment ago can be stocked and
added to a cart at once, through the router, without waiting for the events; and a refusal for stock is checked
with inventory, so a restock a moment ago is not refused."""
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

    # At once, both: catalog's product.created and then inventory.stock_changed may still be on their way to
    # inventory and to the cart; each asks the owners about a variant it has not heard of.
    await router.ok(ADJUST_STOCK, {"v": variant_id, "w": warehouse, "d": 5}, admin)
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


async def test_inventory_asks_the_catalog_about_a_variant_it_has_not_heard_of(router, token_for, db_admin) -> None:
    admin = token_for("ADMIN")
    warehouse = (await router.ok(CREATE_WAREHOUSE, {"code": f"WH-{uuid.uuid4().hex[:6]}", "name": "Unheard"},
                                 admin))["createWarehouse"]["id"]
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": f"Unheard {uuid.uuid4().hex[:6]}"}},
                                admin))["createCategory"]["id"]
    variant_id = (await router.ok(CREATE_PRODUCT, {"input": {
        "name": f"Unheard Widget {uuid.uuid4().hex[:6]}", "categoryId": category,
        "variants": [{"sku": f"UNHEARD-{uuid.uuid4().hex[:10]}", "price": "4.00", "currency": "USD"}]}},
        admin))["createProduct"]["variants"][0]["id"]

    async def registered() -> bool:
        return await db_admin.fetchval("SELECT count(*) FROM inventory.variants WHERE variant_id = $1",
                                       int(variant_id)) == 1

    await eventually(registered, what="inventory to consume product.created")
    # As if product.created had not reached inventory yet (it has, and will not come again).
    async with db_admin.acquire() as connection, connection.transaction():
        await connection.execute("DELETE FROM inventory.stock_levels WHERE variant_id = $1", int(variant_id))
        await connection.execute("DELETE FROM inventory.variants WHERE variant_id = $1", int(variant_id))

    stocked = (await router.ok(ADJUST_STOCK, {"v": variant_id, "w": warehouse, "d": 4}, admin))["adjustStock"]

    assert stocked["available"] == 4
    assert await registered()
    # a variant the catalog does not sell is still refused, and nothing is registered
    unknown = await router.raw(ADJUST_STOCK, {"v": "9" * 15, "w": warehouse, "d": 4}, admin)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND", unknown
    assert await db_admin.fetchval("SELECT count(*) FROM inventory.variants WHERE variant_id = $1",
                                   int("9" * 15)) == 0
