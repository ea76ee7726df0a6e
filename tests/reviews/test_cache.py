"""The reviews response cache: an anonymous product page's reviews and rating are answered from Redis (and marked
shared for the router), and every change they show is visible at once, through the generation bump."""
from __future__ import annotations

from kernel.graphql.context import CALLER_ONLY, SHARED
from subgraphs.reviews import cache
from tests.reviews.conftest import (
    CREATE,
    DELETE,
    MODERATE,
    PRODUCTS,
    REPLY,
    UPDATE,
    VOTE,
    entities,
    next_id,
    order_paid,
    order_placed,
    review_input,
)

PAGE = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id rating { count average }
  reviews(first: 10) { totalCount edges { node { id rating helpfulCount verifiedPurchase reply { body } } } } } } }"""


async def _page(api, product_id: int, token: str | None = None) -> tuple[dict, str]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await api.http.post(api.url, json={"query": PAGE, "variables": {"r": entities(product_id)}},
                                   headers=headers)
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]["_entities"][0], response.headers["cache-control"]


async def test_an_anonymous_page_is_cached_shared_and_fresh_after_every_change(api, product, projections, redis,
                                                                            token_for) -> None:
    seller_id = next_id()
    product_id = await product(seller_id)
    page, cache_control = await _page(api, product_id)
    assert page["rating"]["count"] == 0 and cache_control == SHARED
    # Proof the next answer comes from the cache: the generation is what keys it, and it has not moved.
    generation = await cache.GENERATION.current(redis)
    assert (await _page(api, product_id)) == (page, SHARED)
    assert await cache.GENERATION.current(redis) == generation

    ada_id = next_id()
    ada, bob, admin, seller = (token_for(user_id=ada_id), token_for(), token_for("ADMIN"),
                               token_for("SELLER", user_id=seller_id))
    review = (await api.ok(CREATE, {"input": review_input(product_id, rating=5)}, ada))["createReview"]
    assert (await _page(api, product_id))[0]["rating"]["count"] == 0  # PENDING: not public yet
    await api.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)

    def shown(page: dict) -> dict:
        return page["reviews"]["edges"][0]["node"]

    page = (await _page(api, product_id))[0]
    assert page["rating"] == {"count": 1, "average": 5.0} and shown(page)["helpfulCount"] == 0

    await api.ok(VOTE, {"id": review["id"], "h": True}, bob)
    assert shown((await _page(api, product_id))[0])["helpfulCount"] == 1
    await api.ok(REPLY, {"id": review["id"], "body": "Thank you"}, seller)
    assert shown((await _page(api, product_id))[0])["reply"] == {"body": "Thank you"}

    order_id = next_id()
    assert await projections.deliver("order.placed", order_placed(order_id, ada_id, [product_id])) == "applied"
    assert await projections.deliver("order.paid", order_paid(order_id, ada_id)) == "applied"
    assert shown((await _page(api, product_id))[0])["verifiedPurchase"] is True

    await api.ok(UPDATE, {"id": review["id"], "input": {"rating": 2}}, ada)  # back to moderation
    assert (await _page(api, product_id))[0]["rating"]["count"] == 0
    await api.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)
    assert (await _page(api, product_id))[0]["rating"] == {"count": 1, "average": 2.0}
    await api.ok(DELETE, {"id": review["id"]}, ada)
    assert (await _page(api, product_id))[0]["rating"]["count"] == 0


async def test_a_signed_in_readers_page_is_theirs_alone(api, product, token_for) -> None:
    product_id = await product()
    ada = token_for()
    await api.ok(CREATE, {"input": review_input(product_id)}, ada)
    page, cache_control = await _page(api, product_id, ada)
    assert page["reviews"]["totalCount"] == 1 and cache_control == CALLER_ONLY  # her own PENDING review
    page, cache_control = await _page(api, product_id)
    assert page["reviews"]["totalCount"] == 0 and cache_control == SHARED
    # Only the router's entity fetches are cached: other queries are about the caller or for an ADMIN
    assert (await api.ok(PRODUCTS, {"r": entities(product_id)}))["_entities"][0]["id"] == str(product_id)
