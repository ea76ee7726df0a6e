"""The catalog subgraph through its GraphQL API (in-process ASGI, real Postgres and Redis)."""
from __future__ import annotations

import asyncio
import base64
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import event

from tests.catalog.helpers import drop_catalog_keys

CREATE_CATEGORY = """mutation($input: CreateCategoryInput!) { createCategory(input: $input) {
  id slug name path parent { slug } } }"""
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  id slug name description brand tags specifications images { url alt } createdAt updatedAt
  category { id slug } seller { id } minPrice { amount currency }
  variants { id sku attributes position price { amount currency } product { id } } } }"""
UPDATE_PRODUCT = """mutation($id: ID!, $input: UpdateProductInput!) { updateProduct(id: $id, input: $input) {
  id name brand category { slug } variants { id sku price { amount currency } } } }"""
DELETE_PRODUCT = "mutation($id: ID!) { deleteProduct(id: $id) }"
PRODUCT = """query($id: ID, $slug: String) { product(id: $id, slug: $slug) {
  id slug name brand category { slug } variants { id sku price { amount } } } }"""
PRODUCTS = """query($first: Int, $after: String, $filter: ProductFilter, $sort: ProductSort) {
  products(first: $first, after: $after, filter: $filter, sort: $sort) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id name minPrice { amount } variants { price { amount } } } } } }"""


async def make_category(catalog_api, token: str, name: str, parent_id: str | None = None,
                        slug: str | None = None) -> dict:
    data = await catalog_api.ok(CREATE_CATEGORY, {"input": {"name": name, "parentId": parent_id, "slug": slug}}, token)
    return data["createCategory"]


def product_input(category_id: str, name: str = "Trail Shoe", *, skus: tuple[str, ...] = ("TS-1",),
                  prices: tuple[str, ...] = ("19.99",), **extra: Any) -> dict:
    variants = [{"sku": sku, "price": price, "currency": "USD", "attributes": {"size": str(i)}}
                for i, (sku, price) in enumerate(zip(skus, prices, strict=True))]
    return {"input": {"name": name, "categoryId": category_id, "variants": variants, **extra}}


async def make_product(catalog_api, token: str, category_id: str, name: str = "Trail Shoe", **kwargs: Any) -> dict:
    return (await catalog_api.ok(CREATE_PRODUCT, product_input(category_id, name, **kwargs), token))["createProduct"]


async def count(db, table: str) -> int:
    return await db.fetchval(f"SELECT count(*) FROM catalog.{table}")


@pytest.fixture
async def admin(token_for) -> str:
    return token_for("ADMIN")


@pytest.fixture
async def shoes(catalog_api, admin) -> dict:
    return await make_category(catalog_api, admin, "Shoes")


# ---- creating -----------------------------------------------------------------------------------------------

async def test_admin_creates_a_product_and_the_event_is_in_the_outbox(catalog_api, admin, shoes, db_admin) -> None:
    product = await make_product(
        catalog_api, admin, shoes["id"], "Trail Shoe", skus=("TS-41", "TS-42"), prices=("89.90", "79.5"),
        brand="Acme", description="Grippy.", tags=["running", "trail"],
        specifications={"weight_g": 280, "drop": {"mm": 6}}, images=[{"url": "https://img/1.jpg", "alt": "side"}])
    assert product["slug"] == "trail-shoe"
    assert product["category"] == {"id": shoes["id"], "slug": "shoes"}
    assert product["specifications"] == {"weight_g": 280, "drop": {"mm": 6}}
    assert product["images"] == [{"url": "https://img/1.jpg", "alt": "side"}]
    assert product["minPrice"] == {"amount": "79.50", "currency": "USD"}
    assert [(v["sku"], v["price"]["amount"], v["position"]) for v in product["variants"]] == [
        ("TS-41", "89.90", 0), ("TS-42", "79.50", 1)]
    assert product["variants"][0]["product"]["id"] == product["id"]

    rows = await db_admin.fetch("SELECT topic, key, envelope FROM catalog.outbox")
    assert [(r["topic"], r["key"]) for r in rows] == [("product.created", product["id"])]
    payload = orjson.loads(rows[0]["envelope"])["payload"]
    assert payload["product_id"] == product["id"] and payload["category_id"] == shoes["id"]
    assert [(v["sku"], v["price"], v["currency"]) for v in payload["variants"]] == [
        ("TS-41", "89.90", "USD"), ("TS-42", "79.50", "USD")]
    assert await db_admin.fetchval("SELECT min_price FROM catalog.products") == Decimal("79.50")


async def test_seller_creates_a_product_and_becomes_its_seller(catalog_api, admin, shoes, token_for) -> None:
    product = await make_product(catalog_api, token_for("SELLER", user_id=4242), shoes["id"])
    assert product["seller"] == {"id": "4242"}


async def test_taken_slug_gets_a_suffix(catalog_api, admin, shoes) -> None:
    first = await make_product(catalog_api, admin, shoes["id"], "Trail Shoe", skus=("A-1",))
    second = await make_product(catalog_api, admin, shoes["id"], "Trail  Shoe!", skus=("A-2",))
    assert first["slug"] == "trail-shoe"
    assert second["slug"].startswith("trail-shoe-") and second["slug"] != first["slug"]


async def test_customer_is_forbidden_and_anonymous_is_unauthenticated(catalog_api, shoes, token_for, db_admin) -> None:
    variables = product_input(shoes["id"])
    assert await catalog_api.error_code(CREATE_PRODUCT, variables, token_for("CUSTOMER")) == "FORBIDDEN"
    assert await catalog_api.error_code(CREATE_PRODUCT, variables) == "UNAUTHENTICATED"
    assert await catalog_api.error_code(CREATE_PRODUCT, variables, "garbage") == "UNAUTHENTICATED"
    assert await count(db_admin, "products") == 0


@pytest.mark.parametrize(("change", "code"), [
    ({"prices": ("-1.00",)}, "BAD_USER_INPUT"),
    ({"prices": ("0",)}, "BAD_USER_INPUT"),
    ({"prices": ("0.00",)}, "BAD_USER_INPUT"),
    ({"prices": ("abc",)}, "BAD_USER_INPUT"),
    ({"prices": ("1e3",)}, "BAD_USER_INPUT"),
    ({"prices": ("NaN",)}, "BAD_USER_INPUT"),
    ({"prices": ("19.999",)}, "BAD_USER_INPUT"),
    ({"prices": ("",)}, "BAD_USER_INPUT"),
    ({"name": "   "}, "BAD_USER_INPUT"),
    ({"skus": (), "prices": ()}, "BAD_USER_INPUT"),
    ({"skus": ("X-1", "X-1"), "prices": ("1.00", "2.00")}, "CONFLICT"),
    ({"skus": ("",)}, "BAD_USER_INPUT"),
    ({"specifications": [1, 2]}, "BAD_USER_INPUT"),
    ({"category_id": "999999"}, "NOT_FOUND"),
    ({"category_id": "not-a-number"}, "BAD_USER_INPUT"),
    ({"category_id": "-5"}, "BAD_USER_INPUT"),
])
async def test_bad_product_input_is_rejected_and_nothing_is_written(catalog_api, admin, shoes, db_admin, change,
                                                                    code) -> None:
    change = dict(change)
    kwargs = {k: change.pop(k) for k in ("skus", "prices") if k in change}
    variables = product_input(change.pop("category_id", shoes["id"]), change.pop("name", "Shoe"), **kwargs, **change)
    assert await catalog_api.error_code(CREATE_PRODUCT, variables, admin) == code
    assert await count(db_admin, "products") == 0
    assert await count(db_admin, "product_variants") == 0
    assert await count(db_admin, "outbox") == 0


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", "U$D", ""])
async def test_bad_currency_is_rejected(catalog_api, admin, shoes, db_admin, currency) -> None:
    variables = product_input(shoes["id"])
    variables["input"]["variants"][0]["currency"] = currency
    assert await catalog_api.error_code(CREATE_PRODUCT, variables, admin) == "BAD_USER_INPUT"
    assert await count(db_admin, "products") == 0


async def test_sku_already_in_the_catalog_is_a_conflict_and_writes_nothing(catalog_api, admin, shoes, db_admin) -> None:
    await make_product(catalog_api, admin, shoes["id"], "First", skus=("DUP-1",))
    variables = product_input(shoes["id"], "Second", skus=("NEW-1", "DUP-1"), prices=("1.00", "2.00"))
    assert await catalog_api.error_code(CREATE_PRODUCT, variables, admin) == "CONFLICT"
    assert await count(db_admin, "products") == 1
    assert await count(db_admin, "product_variants") == 1
    assert await count(db_admin, "outbox") == 1
    # the request's session was not poisoned: the next write on the same app works
    await make_product(catalog_api, admin, shoes["id"], "Third", skus=("NEW-1",))


# ---- categories ---------------------------------------------------------------------------------------------

async def test_category_tree(catalog_api, admin, token_for) -> None:
    clothing = await make_category(catalog_api, admin, "Clothing")
    men = await make_category(catalog_api, admin, "Men's Shirts", clothing["id"])
    assert men["slug"] == "men-s-shirts" and men["path"] == "clothing/men-s-shirts"
    assert men["parent"] == {"slug": "clothing"}
    await make_category(catalog_api, admin, "Accessories", slug="acc")
    data = await catalog_api.ok("{ categories { slug children { slug } } category(slug: \"clothing\") { name } }")
    assert [c["slug"] for c in data["categories"]] == ["acc", "clothing", "men-s-shirts"]
    assert data["categories"][1]["children"] == [{"slug": "men-s-shirts"}]
    assert data["category"] == {"name": "Clothing"}
    assert (await catalog_api.ok('{ category(slug: "nope") { id } }'))["category"] is None

    assert await catalog_api.error_code(CREATE_CATEGORY, {"input": {"name": "Clothing"}}, admin) == "CONFLICT"
    bad_slug = {"input": {"name": "X", "slug": "Bad Slug"}}
    assert await catalog_api.error_code(CREATE_CATEGORY, bad_slug, admin) == "BAD_USER_INPUT"
    unknown_parent = {"input": {"name": "X", "parentId": "12345"}}
    assert await catalog_api.error_code(CREATE_CATEGORY, unknown_parent, admin) == "NOT_FOUND"
    assert await catalog_api.error_code(CREATE_CATEGORY, {"input": {"name": "X"}}, token_for("SELLER")) == "FORBIDDEN"
    assert await catalog_api.error_code(CREATE_CATEGORY, {"input": {"name": "X"}}) == "UNAUTHENTICATED"


async def test_product_count_includes_descendants(catalog_api, admin) -> None:
    root = await make_category(catalog_api, admin, "Root")
    child = await make_category(catalog_api, admin, "Child", root["id"])
    await make_product(catalog_api, admin, root["id"], "A", skus=("C-1",))
    await make_product(catalog_api, admin, child["id"], "B", skus=("C-2",))
    data = await catalog_api.ok('{ categories { slug productCount } }')
    assert {c["slug"]: c["productCount"] for c in data["categories"]} == {"root": 2, "child": 1}


# ---- reading ------------------------------------------------------------------------------------------------

async def test_product_by_id_and_by_slug(catalog_api, admin, shoes) -> None:
    created = await make_product(catalog_api, admin, shoes["id"], "Road Shoe", skus=("RS-1",))
    by_id = (await catalog_api.ok(PRODUCT, {"id": created["id"]}))["product"]
    by_slug = (await catalog_api.ok(PRODUCT, {"slug": "road-shoe"}))["product"]
    assert by_id == by_slug and by_id["name"] == "Road Shoe"
    assert (await catalog_api.ok(PRODUCT, {"slug": "no-such-shoe"}))["product"] is None
    assert (await catalog_api.ok(PRODUCT, {"id": "123456789"}))["product"] is None
    assert await catalog_api.error_code(PRODUCT, {}) == "BAD_USER_INPUT"
    assert await catalog_api.error_code(PRODUCT, {"id": created["id"], "slug": "road-shoe"}) == "BAD_USER_INPUT"
    assert await catalog_api.error_code(PRODUCT, {"id": "abc"}) == "BAD_USER_INPUT"


async def test_soft_delete(catalog_api, admin, shoes, db_admin, token_for) -> None:
    created = await make_product(catalog_api, admin, shoes["id"], "Gone Shoe", skus=("G-1", "G-2"),
                                 prices=("1.00", "2.00"))
    await catalog_api.ok(PRODUCT, {"id": created["id"]})  # warm the cache
    assert await catalog_api.error_code(DELETE_PRODUCT, {"id": created["id"]}, token_for("CUSTOMER")) == "FORBIDDEN"
    assert (await catalog_api.ok(DELETE_PRODUCT, {"id": created["id"]}, admin))["deleteProduct"] is True
    assert (await catalog_api.ok(PRODUCT, {"id": created["id"]}))["product"] is None
    assert (await catalog_api.ok(PRODUCT, {"slug": "gone-shoe"}))["product"] is None
    page = (await catalog_api.ok(PRODUCTS, {}))["products"]
    assert page["totalCount"] == 0 and page["edges"] == []
    assert await count(db_admin, "products") == 1  # the row stays, marked deleted
    row = await db_admin.fetchrow("SELECT envelope FROM catalog.outbox WHERE topic = 'product.deleted'")
    payload = orjson.loads(row["envelope"])["payload"]
    assert payload == {"product_id": created["id"], "variant_ids": [v["id"] for v in created["variants"]]}
    assert await catalog_api.error_code(DELETE_PRODUCT, {"id": created["id"]}, admin) == "NOT_FOUND"
    rename = {"id": created["id"], "input": {"name": "x"}}
    assert await catalog_api.error_code(UPDATE_PRODUCT, rename, admin) == "NOT_FOUND"


# ---- updating -----------------------------------------------------------------------------------------------

async def test_owner_updates_and_other_seller_is_forbidden(catalog_api, shoes, token_for, db_admin) -> None:
    owner = token_for("SELLER", user_id=501)
    created = await make_product(catalog_api, owner, shoes["id"], "Owned", skus=("O-1",))
    variables = {"id": created["id"], "input": {"name": "Stolen"}}
    other_seller = token_for("SELLER", user_id=502)
    assert await catalog_api.error_code(UPDATE_PRODUCT, variables, other_seller) == "FORBIDDEN"
    assert await catalog_api.error_code(DELETE_PRODUCT, {"id": created["id"]}, other_seller) == "FORBIDDEN"
    assert await catalog_api.error_code(UPDATE_PRODUCT, variables, token_for("CUSTOMER", user_id=501)) == "FORBIDDEN"
    assert await catalog_api.error_code(UPDATE_PRODUCT, variables) == "UNAUTHENTICATED"
    assert await db_admin.fetchval("SELECT name FROM catalog.products") == "Owned"

    updated = (await catalog_api.ok(UPDATE_PRODUCT, {"id": created["id"], "input": {"name": "Renamed", "brand": "B"}},
                            owner))["updateProduct"]
    assert (updated["name"], updated["brand"]) == ("Renamed", "B")
    admin_update = await catalog_api.ok(UPDATE_PRODUCT, {"id": created["id"], "input": {"brand": None}},
                                        token_for("ADMIN"))
    assert admin_update["updateProduct"]["brand"] is None
    topics = [r["topic"] for r in await db_admin.fetch("SELECT topic FROM catalog.outbox ORDER BY id")]
    assert topics == ["product.created", "product.updated", "product.updated"]


async def test_update_variants_replaces_the_list_matching_by_sku(catalog_api, admin, shoes, db_admin) -> None:
    created = await make_product(catalog_api, admin, shoes["id"], "Var", skus=("V-1", "V-2"), prices=("10.00", "20.00"))
    ids = {v["sku"]: v["id"] for v in created["variants"]}
    variants = [{"sku": "V-2", "price": "5.55"}, {"sku": "V-3", "price": "30.00"}]
    updated = (await catalog_api.ok(UPDATE_PRODUCT, {"id": created["id"], "input": {"variants": variants}},
                            admin))["updateProduct"]
    assert [(v["sku"], v["price"]["amount"]) for v in updated["variants"]] == [("V-2", "5.55"), ("V-3", "30.00")]
    assert updated["variants"][0]["id"] == ids["V-2"]  # a kept SKU keeps its variant id
    assert await db_admin.fetchval("SELECT min_price FROM catalog.products") == Decimal("5.55")
    assert await count(db_admin, "product_variants") == 2


async def test_bad_update_changes_nothing(catalog_api, admin, shoes, db_admin) -> None:
    other = await make_product(catalog_api, admin, shoes["id"], "Other", skus=("TAKEN-1",))
    created = await make_product(catalog_api, admin, shoes["id"], "Mine", skus=("M-1",))
    for variables, code in [
        ({"variants": [{"sku": "TAKEN-1", "price": "1.00"}]}, "CONFLICT"),
        ({"variants": []}, "BAD_USER_INPUT"),
        ({"variants": [{"sku": "M-1", "price": "1.001"}]}, "BAD_USER_INPUT"),
        ({"name": ""}, "BAD_USER_INPUT"),
        ({"name": None}, "BAD_USER_INPUT"),
        ({"categoryId": "777"}, "NOT_FOUND"),
    ]:
        got = await catalog_api.error_code(UPDATE_PRODUCT, {"id": created["id"], "input": variables}, admin)
        assert got == code, variables
    row = await db_admin.fetchrow("SELECT name, min_price FROM catalog.products WHERE id = $1", int(created["id"]))
    assert (row["name"], row["min_price"]) == ("Mine", Decimal("19.99"))
    assert await count(db_admin, "outbox") == 2
    assert other["id"] != created["id"]


# ---- cache --------------------------------------------------------------------------------------------------

async def test_cached_product_and_page_are_invalidated_by_update(catalog_api, admin, shoes, redis) -> None:
    created = await make_product(catalog_api, admin, shoes["id"], "Cached", skus=("K-1",), prices=("10.00",))
    assert (await catalog_api.ok(PRODUCT, {"id": created["id"]}))["product"]["name"] == "Cached"
    page = (await catalog_api.ok(PRODUCTS, {}))["products"]
    assert page["edges"][0]["node"]["name"] == "Cached"
    assert await redis.exists(f"catalog:product:{created['id']}")
    assert await redis.keys("catalog:page:*")

    await catalog_api.ok(UPDATE_PRODUCT, {"id": created["id"], "input": {
        "name": "Fresh", "variants": [{"sku": "K-1", "price": "12.50"}]}}, admin)
    product = (await catalog_api.ok(PRODUCT, {"id": created["id"]}))["product"]
    assert product["name"] == "Fresh" and product["variants"][0]["price"]["amount"] == "12.50"
    node = (await catalog_api.ok(PRODUCTS, {}))["products"]["edges"][0]["node"]
    assert node["name"] == "Fresh" and node["minPrice"]["amount"] == "12.50"


async def test_new_category_is_visible_right_away(catalog_api, admin) -> None:
    assert (await catalog_api.ok("{ categories { slug } }"))["categories"] == []
    await make_category(catalog_api, admin, "Books")
    assert (await catalog_api.ok("{ categories { slug } }"))["categories"] == [{"slug": "books"}]


async def test_a_write_undone_with_its_document_leaves_the_cache_alone(catalog_api, admin, shoes, redis) -> None:
    created = await make_product(catalog_api, admin, shoes["id"], "Kept", skus=("KEPT-1",), prices=("3.00",))
    await catalog_api.ok(PRODUCT, {"id": created["id"]})  # cached now
    generation = await redis.get("catalog:gen")
    assert generation is not None
    document = """mutation($id: ID!, $bad: CreateProductInput!) {
      a: updateProduct(id: $id, input: {name: "Renamed"}) { id }
      b: createProduct(input: $bad) { id } }"""
    bad = {"name": "Broken", "categoryId": shoes["id"],
           "variants": [{"sku": "BROKEN-2", "price": "-1", "currency": "USD"}]}
    assert await catalog_api.error_code(document, {"id": created["id"], "bad": bad}, admin) == "BAD_USER_INPUT"
    # the update was rolled back, and so was its invalidation: nothing ran after a commit that never happened
    assert await redis.get("catalog:gen") == generation
    assert await redis.exists(f"catalog:product:{created['id']}")
    assert (await catalog_api.ok(PRODUCT, {"id": created["id"]}))["product"]["name"] == "Kept"


# ---- live updates -------------------------------------------------------------------------------------------

PRODUCT_UPDATED = "subscription($id: ID!) { productUpdated(productId: $id) { name variants { price { amount } } } }"


async def subscribe_to_product(catalog_api, product_id: str) -> Any:
    from kernel.graphql import RequestContext
    from subgraphs.catalog.schema import schema
    resources = catalog_api.http._transport.app.app.state.resources  # CorrelationMiddleware -> Starlette app
    return await schema.subscribe(PRODUCT_UPDATED, variable_values={"id": product_id},
                                  context_value=RequestContext(resources, None, None))


async def listening(redis, product_id: str) -> None:
    """Until the stream has subscribed to the product's channel (bounded; a guard, not a sleep to rely on)."""
    for _ in range(200):
        if (await redis.pubsub_numsub(f"catalog:product-changed:{product_id}"))[0][1]:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the subscription never listened")


async def test_product_updated_streams_committed_changes_and_ends_on_delete(catalog_api, admin, shoes, redis) -> None:
    created = await make_product(catalog_api, admin, shoes["id"], "Live", skus=("LIVE-1",), prices=("10.00",))
    stream = await subscribe_to_product(catalog_api, created["id"])
    next_event = asyncio.ensure_future(stream.__anext__())
    await listening(redis, created["id"])

    await catalog_api.ok(UPDATE_PRODUCT, {"id": created["id"], "input": {
        "name": "Live 2", "variants": [{"sku": "LIVE-1", "price": "11.00"}]}}, admin)
    event = await asyncio.wait_for(next_event, 10)
    assert not event.errors, event.errors
    assert event.data == {"productUpdated": {"name": "Live 2", "variants": [{"price": {"amount": "11.00"}}]}}

    await catalog_api.ok(DELETE_PRODUCT, {"id": created["id"]}, admin)
    with pytest.raises(StopAsyncIteration):  # nothing can follow a deletion
        await asyncio.wait_for(stream.__anext__(), 10)
    assert (await redis.pubsub_numsub(f"catalog:product-changed:{created['id']}"))[0][1] == 0


async def test_product_updated_for_an_unknown_product_is_not_found(catalog_api) -> None:
    stream = await subscribe_to_product(catalog_api, "987654321")
    result = await asyncio.wait_for(stream.__anext__(), 10)
    assert result.errors[0].extensions["code"] == "NOT_FOUND"


# ---- browsing -----------------------------------------------------------------------------------------------

async def _walk(catalog_api, sort: str, first: int, filter_: dict | None = None) -> list[dict]:
    nodes, after, total = [], None, None
    for _ in range(100):
        variables = {"first": first, "after": after, "sort": sort, "filter": filter_}
        page = (await catalog_api.ok(PRODUCTS, variables))["products"]
        total = page["totalCount"] if total is None else total
        assert page["totalCount"] == total
        nodes.extend(e["node"] for e in page["edges"])
        if page["edges"]:
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(nodes) == total
    return nodes


@pytest.fixture
async def assortment(catalog_api, admin, shoes) -> list[dict]:
    # Repeated prices and names, so ties must be broken by id without dupes or gaps.
    prices = ["5.00", "12.50", "5.00", "99.99", "12.50", "1.00", "5.00", "42.00", "12.50", "7.25", "5.00", "60.00",
              "3.10"]
    names = ["Boot", "Sandal", "Boot", "Clog", "Sneaker", "Loafer", "Mule", "Boot", "Oxford", "Pump", "Sandal",
             "Derby", "Slipper"]
    products = []
    for i, (price, name) in enumerate(zip(prices, names, strict=True)):
        products.append(await make_product(catalog_api, admin, shoes["id"], name, skus=(f"P-{i}",), prices=(price,)))
    return products


@pytest.mark.parametrize("sort", ["NEWEST", "PRICE_ASC", "PRICE_DESC", "NAME"])
@pytest.mark.parametrize("first", [1, 4, 13, 100])
async def test_pagination_walks_every_product_once_in_order(catalog_api, assortment, sort, first) -> None:
    nodes = await _walk(catalog_api, sort, first)
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids)) == len(assortment)

    def price(p: dict) -> Decimal:
        return Decimal(p["minPrice"]["amount"])

    expected = {
        "NEWEST": sorted(assortment, key=lambda p: (p["createdAt"], int(p["id"])), reverse=True),
        "PRICE_ASC": sorted(assortment, key=lambda p: (price(p), int(p["id"]))),
        "PRICE_DESC": sorted(assortment, key=lambda p: (price(p), int(p["id"])), reverse=True),
        "NAME": sorted(assortment, key=lambda p: (p["name"], int(p["id"]))),
    }[sort]
    assert ids == [p["id"] for p in expected]


async def test_page_size_and_cursor_validation(catalog_api, assortment) -> None:
    for first in (0, -1, 101):
        assert await catalog_api.error_code(PRODUCTS, {"first": first}) == "BAD_USER_INPUT"
    assert (await catalog_api.ok(PRODUCTS, {"first": None}))["products"]["totalCount"] == 13
    for after in ("garbage", "!!!", base64.urlsafe_b64encode(b'["NEWEST", 1]').decode(),
                  base64.urlsafe_b64encode(b'["NEWEST", "not-a-date", 5]').decode()):
        assert await catalog_api.error_code(PRODUCTS, {"after": after}) == "BAD_USER_INPUT", after
    by_price = (await catalog_api.ok(PRODUCTS, {"first": 2, "sort": "PRICE_ASC"}))["products"]
    price_cursor = by_price["pageInfo"]["endCursor"]
    assert await catalog_api.error_code(PRODUCTS, {"after": price_cursor, "sort": "NAME"}) == "BAD_USER_INPUT"


async def test_filters(catalog_api, admin, token_for) -> None:
    clothing = await make_category(catalog_api, admin, "Clothing")
    shirts = await make_category(catalog_api, admin, "Shirts", clothing["id"])
    toys = await make_category(catalog_api, admin, "Toys")
    await make_product(catalog_api, admin, clothing["id"], "Coat", skus=("F-1", "F-2"), prices=("150.00", "90.00"),
                       brand="Northwind")
    await make_product(catalog_api, admin, shirts["id"], "Tee", skus=("F-3",), prices=("15.00",), brand="northwind")
    await make_product(catalog_api, admin, toys["id"], "Kite", skus=("F-4",), prices=("25.00",), brand="Skyline")

    async def names(filter_: dict) -> list[str]:
        return sorted(n["name"] for n in await _walk(catalog_api, "NAME", 2, filter_))

    assert await names({"categorySlug": "clothing"}) == ["Coat", "Tee"]  # includes the descendant category
    assert await names({"categorySlug": "shirts"}) == ["Tee"]
    assert await names({"brand": "NORTHWIND"}) == ["Coat", "Tee"]
    assert await names({"priceMin": "20", "priceMax": "95.00"}) == ["Coat", "Kite"]  # Coat via its 90.00 variant
    assert await names({"priceMin": "100"}) == ["Coat"]
    assert await names({"priceMax": "15.00"}) == ["Tee"]
    assert await names({"categorySlug": "clothing", "priceMax": "50"}) == ["Tee"]
    assert await names({"brand": "nobody"}) == []
    assert await catalog_api.error_code(PRODUCTS, {"filter": {"categorySlug": "nope"}}) == "NOT_FOUND"
    assert await catalog_api.error_code(PRODUCTS, {"filter": {"priceMin": "cheap"}}) == "BAD_USER_INPUT"
    assert await catalog_api.error_code(PRODUCTS, {"filter": {"priceMin": "10", "priceMax": "5"}}) == "BAD_USER_INPUT"


# ---- federation ---------------------------------------------------------------------------------------------

ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on Product { id name category { slug } variants { sku } }
  ... on ProductVariant { id sku price { amount currency } product { id name } } } }"""


async def test_entities_resolve_products_and_variants_by_key(catalog_api, admin, shoes) -> None:
    a = await make_product(catalog_api, admin, shoes["id"], "Alpha", skus=("E-1", "E-2"), prices=("1.00", "2.00"))
    b = await make_product(catalog_api, admin, shoes["id"], "Beta", skus=("E-3",), prices=("3.00",))
    reps = [{"__typename": "Product", "id": a["id"]}, {"__typename": "ProductVariant", "id": a["variants"][1]["id"]},
            {"__typename": "Product", "id": b["id"]}, {"__typename": "Product", "id": "999"},
            {"__typename": "ProductVariant", "id": "nonsense"}]
    entities = (await catalog_api.ok(ENTITIES, {"r": reps}))["_entities"]
    assert entities[0] == {"id": a["id"], "name": "Alpha", "category": {"slug": "shoes"},
                           "variants": [{"sku": "E-1"}, {"sku": "E-2"}]}
    assert entities[1] == {"id": a["variants"][1]["id"], "sku": "E-2", "price": {"amount": "2.00", "currency": "USD"},
                           "product": {"id": a["id"], "name": "Alpha"}}
    assert entities[2]["name"] == "Beta"
    assert entities[3] is None and entities[4] is None
    # warm cache gives the same answer
    assert (await catalog_api.ok(ENTITIES, {"r": reps}))["_entities"] == entities


async def test_sdl_exposes_the_federation_contract(catalog_api) -> None:
    sdl = (await catalog_api.ok("{ _service { sdl } }"))["_service"]["sdl"]
    for fragment in ('type Product @key(fields: "id")', 'type ProductVariant @key(fields: "id")',
                     "type Money @shareable", 'type User @key(fields: "id", resolvable: false)'):
        assert fragment in sdl


# ---- query count --------------------------------------------------------------------------------------------

BROWSE = """query($first: Int!) { products(first: $first) { totalCount edges { node {
  name variants { sku } category { name } seller { id } } } } }"""


async def test_browse_costs_a_bounded_number_of_queries(catalog_api, admin, shoes, catalog_engine, redis,
                                                        db_admin) -> None:
    boots = await make_category(catalog_api, admin, "Boots", shoes["id"])
    for i in range(55):
        await make_product(catalog_api, admin, (shoes if i % 2 else boots)["id"], f"Product {i}",
                           skus=(f"Q-{i}-a", f"Q-{i}-b"), prices=("10.00", f"{i + 1}.00"))
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    async def run(first: int) -> int:
        await drop_catalog_keys(redis)  # cold cache: every layer goes to Postgres
        statements.clear()
        data = await catalog_api.ok(BROWSE, {"first": first})
        assert len(data["products"]["edges"]) == first
        assert all(len(e["node"]["variants"]) == 2 for e in data["products"]["edges"])
        return len(statements)

    event.listen(catalog_engine.sync_engine, "before_cursor_execute", record)
    try:
        cold_5, cold_50 = await run(5), await run(50)
        statements.clear()
        await catalog_api.ok(BROWSE, {"first": 50})  # warm: the same page again, a whole-response cache hit
        warm_50 = len(statements)
        await redis.delete(*await redis.keys("catalog:response:*"))
        await catalog_api.ok(BROWSE, {"first": 50})  # executed again, but the page and documents come from Redis
        executed_warm_50 = len(statements)
    finally:
        event.remove(catalog_engine.sync_engine, "before_cursor_execute", record)
    print(f"SQL statements for a cold products(first: 50): {cold_50}; first: 5: {cold_5}; warm: {warm_50}")
    assert cold_50 == cold_5 <= 5, statements
    assert warm_50 == executed_warm_50 == 0


async def test_only_successful_queries_are_cached_whole(catalog_api, admin, shoes, redis) -> None:
    await redis.delete(*await redis.keys("catalog:response:*") or ["-"])
    assert await catalog_api.error_code(PRODUCTS, {"filter": {"categorySlug": "nope"}}) == "NOT_FOUND"
    await make_product(catalog_api, admin, shoes["id"], "Only", skus=("W-1",))
    assert await redis.keys("catalog:response:*") == []  # neither the error nor the mutation
    first = await catalog_api.ok(PRODUCTS, {"first": 3})
    assert len(await redis.keys("catalog:response:*")) == 1
    assert await catalog_api.ok(PRODUCTS, {"first": 3}) == first
    await catalog_api.ok(PRODUCTS, {"first": 4})  # other variables, other entry
    assert len(await redis.keys("catalog:response:*")) == 2


@pytest.mark.parametrize("cursor_parts", [
    ["NEWEST", "2025-01-01T00:00:00+00:00", 2**63],
    ["NEWEST", "2025-01-01T00:00:00+00:00", True],
    ["NEWEST", "0001-01-01T00:00:00+23:59", 1],
    ["NAME", "a\u0000b", 1],
    ["PRICE_ASC", "1e999999", 1],
])
async def test_crafted_cursors_are_bad_user_input(catalog_api, cursor_parts) -> None:
    import base64

    import orjson
    cursor = base64.urlsafe_b64encode(orjson.dumps(cursor_parts)).decode().rstrip("=")
    query = "query($after: String, $sort: ProductSort) { products(after: $after, sort: $sort) { totalCount } }"
    assert await catalog_api.error_code(query, {"after": cursor, "sort": cursor_parts[0]}) == "BAD_USER_INPUT"


@pytest.mark.parametrize("price_min", ["1000000000000000000000000000000", "\u0661\u0669", "1e5"])
async def test_out_of_range_or_non_ascii_price_filters_are_bad_user_input(catalog_api, price_min) -> None:
    query = "query($min: String) { products(filter: {priceMin: $min}) { totalCount } }"
    assert await catalog_api.error_code(query, {"min": price_min}) == "BAD_USER_INPUT"


async def test_padded_currency_is_bad_user_input(catalog_api, admin, shoes) -> None:
    def product(**overrides):
        variant = {"sku": f"SPEC-{len(str(overrides))}", "price": "5.00", "currency": "USD",
                   **overrides.pop("variant", {})}
        return {"input": {"name": "Odd", "categoryId": shoes["id"], "variants": [variant], **overrides}}
    padded = product(variant={"currency": "USD\n"})
    assert await catalog_api.error_code(CREATE_PRODUCT, padded, admin) == "BAD_USER_INPUT"


def test_specifications_json_storage_cannot_keep_are_refused_at_the_service() -> None:
    from kernel.errors import BadUserInput
    from subgraphs.catalog.service import _clean_object
    for unstorable in ({"a": 10**30}, {"a": float("inf")}, {"a": [float("nan")]}):
        with pytest.raises(BadUserInput):
            _clean_object(unstorable, "specifications")


async def test_concurrent_products_with_crossing_skus_conflict_instead_of_deadlocking(catalog_api, admin,
                                                                                      shoes) -> None:
    import asyncio

    def product(skus):
        return {"input": {"name": "Crossing", "categoryId": shoes["id"],
                          "variants": [{"sku": sku, "price": "5.00", "currency": "USD"} for sku in skus]}}
    for round_ in range(5):
        a, b = f"CROSS-{round_}-A", f"CROSS-{round_}-B"
        results = await asyncio.gather(catalog_api.raw(CREATE_PRODUCT, product([a, b]), admin),
                                       catalog_api.raw(CREATE_PRODUCT, product([b, a]), admin))
        codes = sorted(r["errors"][0]["extensions"]["code"] if r.get("errors") else "OK" for r in results)
        assert codes == ["CONFLICT", "OK"], results


async def test_a_failing_mutation_undoes_the_whole_document(catalog_api, admin, shoes, db_admin) -> None:
    created = (await catalog_api.ok(CREATE_PRODUCT, {"input": {
        "name": "Survivor", "categoryId": shoes["id"],
        "variants": [{"sku": "SURVIVE-1", "price": "5.00", "currency": "USD"}]}}, admin))["createProduct"]
    document = """mutation($id: ID!, $bad: CreateProductInput!) {
      a: deleteProduct(id: $id)
      b: createProduct(input: $bad) { id } }"""
    bad = {"name": "Broken", "categoryId": shoes["id"],
           "variants": [{"sku": "BROKEN-1", "price": "-1", "currency": "USD"}]}
    assert await catalog_api.error_code(document, {"id": created["id"], "bad": bad}, admin) == "BAD_USER_INPUT"
    assert await db_admin.fetchval("SELECT deleted_at FROM catalog.products WHERE id = $1", int(created["id"])) is None
    product = await catalog_api.ok("query($id: ID) { product(id: $id) { name } }", {"id": created["id"]})
    assert product == {"product": {"name": "Survivor"}}
