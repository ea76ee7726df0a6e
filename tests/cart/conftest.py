"""Cart-only fixtures on top of the shared stack in tests/conftest.py: the in-process cart app (GraphQL and
its internal checkout route), tokens, and catalog/stock projections fed straight through consumers.py."""
from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from kernel.auth import TokenIssuer
from kernel.settings import Settings
from subgraphs.cart.consumers import project_product, project_stock
from subgraphs.catalog.events import ProductCreated
from subgraphs.inventory.events import StockChanged
from subgraphs.orders.events import OrderPlaced
from tests.conftest import GraphQLClient, served_in_process

CART_FIELDS = """id itemCount updatedAt subtotal { amount currency }
  items { id quantity name sku productId available variant { id }
          unitPrice { amount currency } lineTotal { amount currency } }"""
CART = f"query($cartId: ID) {{ cart(cartId: $cartId) {{ {CART_FIELDS} }} }}"
ADD = f"""mutation($cartId: ID, $variantId: ID!, $quantity: Int!) {{
  addToCart(cartId: $cartId, variantId: $variantId, quantity: $quantity) {{ {CART_FIELDS} }} }}"""
UPDATE = f"""mutation($cartId: ID, $itemId: ID!, $quantity: Int!) {{
  updateCartItem(cartId: $cartId, itemId: $itemId, quantity: $quantity) {{ {CART_FIELDS} }} }}"""
REMOVE = f"""mutation($cartId: ID, $itemId: ID!) {{
  removeCartItem(cartId: $cartId, itemId: $itemId) {{ {CART_FIELDS} }} }}"""
CLEAR = f"mutation($cartId: ID) {{ clearCart(cartId: $cartId) {{ {CART_FIELDS} }} }}"
MERGE = f"mutation($guestCartId: ID!) {{ mergeCart(guestCartId: $guestCartId) {{ {CART_FIELDS} }} }}"

_ids = itertools.count(7_000_000_000)


@pytest.fixture(scope="session")
async def cart_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from subgraphs.cart.app import build_app
    async with served_in_process(build_app(settings)) as http:
        yield http


@pytest.fixture(scope="session")
def cart_api(cart_http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(cart_http, "/graphql")


@pytest.fixture(scope="session")
def token_for(token_issuer: TokenIssuer) -> Callable[[int], str]:
    """An access token for user `user_id` (the cart trusts the token; no users row is needed)."""
    def issue(user_id: int) -> str:
        return token_issuer.issue(user_id, ["CUSTOMER"])
    return issue


def next_id() -> int:
    return next(_ids)


def product_payload(product_id: int, variants: list[tuple[int, str, str]], *, name: str = "Trail Shoe",
                    updated_at: datetime | None = None) -> dict[str, Any]:
    """catalog's product.created/updated snapshot; variants: (variant id, sku, price)."""
    stamp = (updated_at or datetime.now(UTC)).isoformat()
    return {"product_id": str(product_id), "slug": "trail-shoe", "name": name, "brand": None, "description": None,
            "tags": [], "category_id": "1", "seller_id": "1", "min_price": min(v[2] for v in variants) if variants
            else "0.00", "currency": "USD", "created_at": stamp, "updated_at": stamp,
            "variants": [{"variant_id": str(v), "sku": sku, "price": price, "currency": "USD", "attributes": {}}
                         for v, sku, price in variants]}


def order_placed(cart_id: str | None, lines: list[tuple[int, int]], *, coupon_code: str | None = None,
                 order_id: int | None = None) -> dict[str, Any]:
    """order.placed as orders writes it, for an order of `lines` (variant id, quantity) from `cart_id`."""
    return {"order_id": str(order_id or next_id()), "user_id": "1", "number": "NC-1", "cart_id": cart_id,
            "items": [{"variant_id": str(v), "product_id": "1", "sku": f"SKU-{v}", "name": "Trail Shoe",
                       "quantity": q, "unit_price": "19.99"} for v, q in lines],
            "subtotal": "19.99", "discount": "0.00", "total": "19.99", "currency": "USD",
            "placed_at": datetime.now(UTC).isoformat(), "coupon_code": coupon_code}


def placed(cart_id: str | None, lines: list[tuple[int, int]], **kwargs: Any) -> OrderPlaced:
    return OrderPlaced.from_payload(order_placed(cart_id, lines, **kwargs))


Variant = dict[str, Any]


@pytest.fixture
def make_variant(redis: Redis) -> Callable[..., Awaitable[Variant]]:
    """A sold variant in the cart's projections: one product with one variant at `price`, `stock` available."""
    async def factory(*, price: str = "19.99", stock: int | None = 10, name: str = "Trail Shoe") -> Variant:
        product_id, variant_id = next_id(), next_id()
        sku = f"SKU-{variant_id}"
        await project_product(redis, ProductCreated.from_payload(
            product_payload(product_id, [(variant_id, sku, price)], name=name)))
        if stock is not None:
            await project_stock(redis, StockChanged(variant_id=variant_id, on_hand=stock, reserved=0, available=stock,
                                                    in_stock=stock > 0))
        return {"product_id": product_id, "variant_id": variant_id, "sku": sku, "price": price, "name": name}
    return factory
