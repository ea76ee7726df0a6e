"""After-purchase scenarios (`python -m bench --only after-purchase`): the hot read of each of the newest subgraphs,
through the router, on data made beforehand through the API (untimed).

- reviews (:4010): a product page's reviews block, `product(id) { name rating reviews(first: 10) }` (catalog +
  reviews), over 4 demo products with 25 approved reviews each, anonymous (reviews' response cache and the
  router's answer) and signed in (executed: reviews also looks for the caller's own review);
- shipping (:4012): `shippingMethods(cartId, address)`, the checkout's shipping quote (shipping reads the cart from
  the cart subgraph, then prices the seeded zones' methods for its weight and value), for 8 guest carts of 1 to 3
  demo items anonymous and for the shopper's own cart signed in (always executed: shipping's answers are
  private), each rotated over a domestic and two international addresses;
- notifications (:4011): the inbox, `notifications(first: 20)` with unread count and delivery states, signed in,
  for a shopper whose orders (placed through the router beforehand) left at least 24 notifications.
"""
from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from bench.httpload import LoadResult, graphql_body, post_graphql, run_load
from bench.search_bench import shown

PRODUCT_REVIEWS = """query ProductReviews($id: ID!) { product(id: $id) { id name
  rating { average count histogram }
  reviews(first: 10) { totalCount pageInfo { hasNextPage endCursor } edges { node { id rating title body
    helpfulCount verifiedPurchase author { id } reply { body } createdAt } } } } }"""
SHIPPING_METHODS = """query ShippingMethods($cart: ID, $address: AddressInput!) {
  shippingMethods(cartId: $cart, address: $address) { id name carrier price { amount currency } minDays maxDays } }"""
INBOX = """query Inbox { notifications(first: 20) { totalCount unreadCount pageInfo { hasNextPage endCursor }
  edges { node { id kind category title body orderId link read createdAt deliveries { channel status } } } } }"""

PRODUCTS = "query Products { products(first: 40) { edges { node { id variants { id } } } } }"
WAREHOUSES = "query { warehouses { id } }"
ADJUST = """mutation($v: ID!, $w: ID!, $d: Int!) { adjustStock(variantId: $v, warehouseId: $w, delta: $d,
  reason: "after-purchase bench") { available } }"""
ADD_TO_CART = "mutation($cart: ID, $v: ID!, $q: Int!) { addToCart(cartId: $cart, variantId: $v, quantity: $q) { id } }"
CREATE_REVIEW = "mutation($input: CreateReviewInput!) { createReview(input: $input) { id } }"
APPROVE = "mutation($id: ID!) { moderateReview(id: $id, decision: APPROVE) { id } }"
PLACE_ORDER = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }"
INBOX_SIZE = "query { notifications(first: 1) { totalCount } }"

REVIEWED_PRODUCTS = 4
REVIEWS_PER_PRODUCT = 25
GUEST_CARTS = 8
ORDERS_FOR_INBOX = 12
# Bench users exist only as token subjects: reviews, cart, orders and notifications know users by id.
REVIEWER_IDS = 7_100_000
SHOPPER_ID = 7_200_001
INBOX_OWNER_ID = 7_200_002
ADDRESSES = (
    {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"},
    {"line1": "2 Rue de Rivoli", "city": "Paris", "postalCode": "75001", "country": "FR"},
    {"line1": "3 Bench Road", "city": "Porto", "postalCode": "4000-001", "country": "PT"},
)
REVIEW_TITLES = ("Does the job", "Better than expected", "Would buy again", "Not for me", "Solid value")
SETUP_DEADLINE_SECONDS = 120

TokenFor = Callable[[int, str], str]  # (user id, role) -> access token signed for the booted platform


async def _until_accepted(http: httpx.AsyncClient, router_url: str, query: str, variables: dict[str, Any],
                          token: str | None = None) -> dict[str, Any]:
    """`query` once a projection has caught up: right after the seed (or a restock), reviews and the cart may
    not yet have heard of a product or its stock through Kafka, and refuse it until they do."""
    deadline = time.monotonic() + SETUP_DEADLINE_SECONDS
    while True:
        try:
            return await post_graphql(http, router_url, query, variables, token)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)  # poll the projection


async def _stocked_variants(http: httpx.AsyncClient, router_url: str, admin: str, count: int) -> list[str]:
    """The first variant of `count` demo products, each restocked so that carts and orders never run short."""
    edges = (await post_graphql(http, router_url, PRODUCTS))["products"]["edges"]
    variant_ids = [e["node"]["variants"][0]["id"] for e in edges[:count]]
    warehouse = (await post_graphql(http, router_url, WAREHOUSES, token=admin))["warehouses"][0]["id"]
    for variant_id in variant_ids:
        await post_graphql(http, router_url, ADJUST, {"v": variant_id, "w": warehouse, "d": 100_000}, token=admin)
    return variant_ids


async def _cart(http: httpx.AsyncClient, router_url: str, variant_ids: list[str], token: str | None = None) -> str:
    """A cart holding one to three units of each of `variant_ids` (a guest cart without `token`); its id."""
    cart_id: str | None = None
    for n, variant_id in enumerate(variant_ids):
        answer = await _until_accepted(http, router_url, ADD_TO_CART,
                                       {"cart": cart_id, "v": variant_id, "q": 1 + n % 3}, token)
        cart_id = answer["addToCart"]["id"]
    assert cart_id is not None, "a cart needs at least one variant"
    return cart_id


async def _reviewed_products(http: httpx.AsyncClient, router_url: str, admin: str,
                             token_for: TokenFor) -> list[str]:
    """REVIEWED_PRODUCTS demo products with REVIEWS_PER_PRODUCT approved reviews each, by distinct shoppers."""
    edges = (await post_graphql(http, router_url, PRODUCTS))["products"]["edges"]
    product_ids = [e["node"]["id"] for e in edges[-REVIEWED_PRODUCTS:]]
    reviewer = itertools.count(REVIEWER_IDS)
    for product_id in product_ids:
        for n in range(REVIEWS_PER_PRODUCT):
            review = {"productId": product_id, "rating": 1 + (n * 7) % 5, "title": REVIEW_TITLES[n % 5],
                      "body": f"Used it for {n + 1} weeks. " * (1 + n % 4)}
            created = await _until_accepted(http, router_url, CREATE_REVIEW, {"input": review},
                                            token_for(next(reviewer), "CUSTOMER"))
            await post_graphql(http, router_url, APPROVE, {"id": created["createReview"]["id"]}, admin)
    return product_ids


async def _inbox_owner(http: httpx.AsyncClient, router_url: str, variant_ids: list[str],
                       token_for: TokenFor) -> str:
    """A shopper who placed ORDERS_FOR_INBOX orders through the router; returns their token once notifications
    holds at least two notifications per order (placed, then paid or cancelled)."""
    token = token_for(INBOX_OWNER_ID, "CUSTOMER")
    for n in range(ORDERS_FOR_INBOX):
        cart_id = await _cart(http, router_url, [variant_ids[n % len(variant_ids)]])
        await post_graphql(http, router_url, PLACE_ORDER, {"input": {
            "cartId": cart_id, "shippingAddress": ADDRESSES[0], "idempotencyKey": uuid.uuid4().hex,
            "paymentMethod": {"provider": "simulated", "token": "tok_visa"}}}, token)
    deadline = time.monotonic() + SETUP_DEADLINE_SECONDS
    while (await post_graphql(http, router_url, INBOX_SIZE, token=token))["notifications"]["totalCount"] \
            < 2 * ORDERS_FOR_INBOX:
        if time.monotonic() > deadline:
            raise RuntimeError("the orders' notifications did not reach the inbox")
        await asyncio.sleep(0.5)  # poll until the saga's events are notified
    return token


async def after_purchase_scenarios(router_url: str, concurrency: int, duration: float, admin: str,
                                   token_for: TokenFor) -> list[LoadResult]:
    async with httpx.AsyncClient(timeout=30) as http:
        product_ids = await _reviewed_products(http, router_url, admin, token_for)
        variant_ids = await _stocked_variants(http, router_url, admin, 12)
        guest_carts = [await _cart(http, router_url, variant_ids[n % 4:n % 4 + 1 + n % 3])
                       for n in range(GUEST_CARTS)]
        shopper = token_for(SHOPPER_ID, "CUSTOMER")
        own_cart = await _cart(http, router_url, variant_ids[4:7], shopper)
        inbox_owner = await _inbox_owner(http, router_url, variant_ids[7:], token_for)

    signed_in = {"authorization": f"Bearer {shopper}"}
    product_pages = itertools.cycle([graphql_body(PRODUCT_REVIEWS, {"id": p}) for p in product_ids])
    guest_quotes = itertools.cycle([graphql_body(SHIPPING_METHODS, {"cart": c, "address": a})
                                    for c in guest_carts for a in ADDRESSES])
    own_quotes = itertools.cycle([graphql_body(SHIPPING_METHODS, {"cart": own_cart, "address": a})
                                  for a in ADDRESSES])
    inbox = graphql_body(INBOX)
    scenarios: list[tuple[str, Callable[[int], tuple[bytes, dict[str, str]]]]] = [
        ("product reviews + rating via router, anonymous", lambda _: (next(product_pages), {})),
        ("product reviews + rating via router, signed in", lambda _: (next(product_pages), signed_in)),
        ("shippingMethods(guest cart) via router, anonymous", lambda _: (next(guest_quotes), {})),
        ("shippingMethods(own cart) via router, signed in", lambda _: (next(own_quotes), signed_in)),
        ("notifications inbox (first:20) via router, signed in",
         lambda _: (inbox, {"authorization": f"Bearer {inbox_owner}"})),
    ]
    return [shown(await run_load(name, router_url, request, concurrency=concurrency, duration=duration))
            for name, request in scenarios]
