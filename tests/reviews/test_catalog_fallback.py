"""A product listed a moment ago, whose product.created has not reached the reviews-projections consumer yet: the
reviews subgraph asks the catalog (its `_entities` endpoint over internal HTTP, as the cart does for a variant)
and remembers the answer, seller included, until the event replaces it."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from kernel.settings import Settings
from tests.conftest import GraphQLClient
from tests.orders.conftest import closed_port, serve_locally
from tests.reviews.conftest import CREATE, MODERATE, REPLY, next_id, review_input, reviews_client

CREATE_CATEGORY = "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id } }"
CREATE_PRODUCT = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id seller { id } } }"
DELETE_PRODUCT = "mutation($id: ID!) { deleteProduct(id: $id) }"


@pytest.fixture(scope="module")
async def catalog(settings: Settings) -> AsyncIterator[tuple[str, GraphQLClient]]:
    from subgraphs.catalog.app import build_app
    app = build_app(settings)
    try:
        async with serve_locally(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield url, GraphQLClient(http, "/graphql")
    finally:
        # Served without a lifespan: close what the app would close at shutdown.
        await app.app.state.resources.redis.aclose()
        await app.app.state.resources.session_factory.kw["bind"].dispose()


async def listed_product(catalog: GraphQLClient, token_for, seller_id: int) -> int:
    """A product created in the catalog; its product.created stays in the catalog's outbox (no relay runs here)."""
    category = (await catalog.ok(CREATE_CATEGORY, {"input": {"name": f"Shoes {uuid.uuid4().hex[:6]}"}},
                                 token_for("ADMIN")))["createCategory"]["id"]
    product = (await catalog.ok(CREATE_PRODUCT, {"input": {
        "name": "Trail Shoe", "categoryId": category,
        "variants": [{"sku": f"TS-{uuid.uuid4().hex[:10]}", "price": "49.90", "currency": "USD"}]}},
        token_for("SELLER", user_id=seller_id)))["createProduct"]
    assert product["seller"] == {"id": str(seller_id)}
    return int(product["id"])


async def test_a_product_no_event_has_announced_yet_is_learned_from_the_catalog(settings, catalog, token_for,
                                                                                db_admin) -> None:
    url, catalog_api = catalog
    seller_id = next_id()
    product_id = await listed_product(catalog_api, token_for, seller_id)
    async with reviews_client(settings, catalog_service_url=url) as api:
        review = (await api.ok(CREATE, {"input": review_input(product_id)}, token_for()))["createReview"]
        assert review["product"] == {"id": str(product_id)}
        # The seller came with the answer: they may reply once the review is approved
        await api.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, token_for("ADMIN"))
        replied = await api.ok(REPLY, {"id": review["id"], "body": "Thank you"}, token_for("SELLER", user_id=seller_id))
        assert replied["replyToReview"]["reply"]["body"] == "Thank you"
        # The seller may not review their own product, known this way too
        assert await api.error_code(CREATE, {"input": review_input(product_id)},
                                    token_for("SELLER", user_id=seller_id)) == "FORBIDDEN"
        # A product the catalog does not have is NOT_FOUND, and nothing is remembered about it
        unknown = next_id()
        assert await api.error_code(CREATE, {"input": review_input(unknown)}, token_for()) == "NOT_FOUND"
    assert await db_admin.fetchval("SELECT count(*) FROM reviews.products WHERE product_id = $1", unknown) == 0
    assert await db_admin.fetchval("SELECT seller_id FROM reviews.products WHERE product_id = $1",
                                   product_id) == seller_id


async def test_a_deleted_product_is_not_found_even_when_asked(settings, catalog, token_for) -> None:
    url, catalog_api = catalog
    seller_id = next_id()
    product_id = await listed_product(catalog_api, token_for, seller_id)
    await catalog_api.ok(DELETE_PRODUCT, {"id": str(product_id)}, token_for("SELLER", user_id=seller_id))
    async with reviews_client(settings, catalog_service_url=url) as api:
        assert await api.error_code(CREATE, {"input": review_input(product_id)}, token_for()) == "NOT_FOUND"


async def test_a_catalog_that_does_not_answer_leaves_the_product_unknown(settings, catalog, token_for,
                                                                         db_admin) -> None:
    _, catalog_api = catalog
    product_id = await listed_product(catalog_api, token_for, next_id())
    with closed_port() as nowhere:
        async with reviews_client(settings, catalog_service_url=nowhere) as api:
            body = await api.raw(CREATE, {"input": review_input(product_id)}, token_for())
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await db_admin.fetchval("SELECT count(*) FROM reviews.reviews") == 0
