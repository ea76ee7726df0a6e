"""The demo data `make run` creates: enough of it, the documented logins, and only once."""
from __future__ import annotations

from nexuscart.seed import ADMIN, CUSTOMER, seed_demo_data


async def counts(db_admin) -> dict[str, int]:
    return {table: await db_admin.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("users.users", "catalog.categories", "catalog.products", "catalog.product_variants",
                          "inventory.warehouses", "inventory.stock_levels")}


async def test_demo_seed_creates_the_catalogue_and_logins_once(settings, db_admin, users_api) -> None:
    assert "seeded demo data" in await seed_demo_data(settings)
    seeded = await counts(db_admin)
    assert seeded["catalog.products"] >= 200 and seeded["catalog.categories"] >= 10
    assert seeded["catalog.product_variants"] > seeded["catalog.products"]  # products with several variants
    assert await db_admin.fetchval("SELECT count(DISTINCT category_id) FROM catalog.products") >= 10
    # every variant has stock rows in at least two warehouses, and most of it is in stock
    assert seeded["inventory.warehouses"] >= 2
    assert await db_admin.fetchval(
        "SELECT count(*) FROM (SELECT variant_id FROM inventory.stock_levels GROUP BY variant_id "
        "HAVING count(*) >= 2) v") == seeded["catalog.product_variants"]
    in_stock = await db_admin.fetchval("SELECT count(DISTINCT variant_id) FROM inventory.stock_levels "
                                       "WHERE on_hand - reserved > 0")
    assert in_stock > seeded["catalog.product_variants"] * 0.8

    login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { roles } } }"
    admin = await users_api.ok(login, {"e": ADMIN[0], "p": ADMIN[1]})
    customer = await users_api.ok(login, {"e": CUSTOMER[0], "p": CUSTOMER[1]})
    assert admin["login"]["user"]["roles"] == ["ADMIN"]
    assert customer["login"]["user"]["roles"] == ["CUSTOMER"]

    assert "already present" in await seed_demo_data(settings)
    assert await counts(db_admin) == seeded
