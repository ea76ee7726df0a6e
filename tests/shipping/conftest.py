"""Shipping fixtures: the shipping app served over real HTTP (orders calls its internal quote; its own
shippingMethods reads the orders tests' fake cart), an orders app whose SHIPPING_SERVICE_URL points at it, and the
consumers on both sides (shipping's projections, orders' shipment group) driven through the kernel's
IdempotentConsumer, inbox included."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from kernel.consumer import WorkerResources
from kernel.db import create_session_factory
from kernel.graphql import ServiceResources
from kernel.settings import Settings
from tests.conftest import GraphQLClient, served_in_process
from tests.event_contracts import as_consumed
from tests.event_driver import EventDriver
from tests.orders.conftest import (  # noqa: F401  (fixtures shared with the orders tests)
    ADDRESS,
    FakePeers,
    fake_peers_app,
    fake_peers_url,
    payment_successful,
    peers,
    saga,
    serve_locally,
)

US = {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}
CA = {"line1": "1 Rue", "city": "Montreal", "region": "QC", "postalCode": "H2X 1Y4", "country": "CA"}
NOWHERE = {"line1": "1 Road", "city": "Nuuk", "postalCode": "3900", "country": "GL"}

ZONE = """mutation($input: ShippingZoneInput!) { createShippingZone(input: $input) { id name countries regions
  postalCodePrefixes } }"""
METHOD = """mutation($zone: ID!, $input: ShippingMethodInput!) { createShippingMethod(zoneId: $zone, input: $input) {
  id name carrier kind currency price pricePerKg freeAbove maxWeightGrams minDays maxDays } }"""
METHODS = """query($cart: ID, $address: AddressInput!) { shippingMethods(cartId: $cart, address: $address) {
  id name carrier price { amount currency } minDays maxDays } }"""
SHIP = """mutation($input: CreateShipmentInput!) { createShipment(input: $input) {
  id carrier trackingNumber trackingUrl status lines { orderItemId quantity } shippedAt deliveredAt } }"""
DELIVERED = "mutation($id: ID!) { markShipmentDelivered(id: $id) { id status deliveredAt } }"
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status subtotal { amount }
  shippingTotal { amount currency } total { amount currency } items { id productId quantity } } }"""


@pytest.fixture
def worker(settings: Settings, service_engine, redis) -> WorkerResources:
    return WorkerResources(settings=settings, session_factory=create_session_factory(service_engine), redis=redis)


@pytest.fixture
def projections(worker: WorkerResources) -> EventDriver:
    """Shipping's projections group; what it is fed must be what a producer writes."""
    from subgraphs.shipping.consumers import consumer_specs
    return EventDriver.for_group(worker, consumer_specs, check_contract=True)


@pytest.fixture
def orders_shipping(worker: WorkerResources) -> EventDriver:
    """Orders' shipment group (shipment.created / shipment.delivered move the order on)."""
    from subgraphs.orders.consumers import consumer_specs
    return EventDriver.for_group(worker, consumer_specs, "orders-shipping", check_contract=True)


@contextlib.asynccontextmanager
async def _closing(app: Any) -> AsyncIterator[ServiceResources]:
    resources: ServiceResources = app.app.state.resources  # CorrelationMiddleware -> Starlette app
    try:
        yield resources
    finally:
        await resources.aclose()


@pytest.fixture(scope="session")
async def shipping_url(settings: Settings, fake_peers_url: str) -> AsyncIterator[str]:  # noqa: F811
    from subgraphs.shipping.app import build_app
    app = build_app(settings.model_copy(update={"cart_service_url": fake_peers_url}))
    async with _closing(app), serve_locally(app) as url:
        yield url


@pytest.fixture(scope="session")
async def shipping_api(shipping_url: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shipping_url, timeout=30) as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture(scope="session")
async def orders_api(settings: Settings, fake_peers_url: str,  # noqa: F811
                     shipping_url: str) -> AsyncIterator[GraphQLClient]:
    """Orders asking this shipping app for the shipping price (and leaving stock to the saga, which the tests
    drive: no inventory to ask)."""
    from subgraphs.orders.app import build_app
    app = build_app(settings.model_copy(update={
        "cart_service_url": fake_peers_url, "users_service_url": fake_peers_url, "shipping_service_url": shipping_url,
        "inventory_service_url": ""}))
    async with served_in_process(app, "http://orders") as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture(scope="session")
def worker_resources(settings: Settings, orders_api: GraphQLClient) -> WorkerResources:
    """What tests.orders.conftest's `saga` fixture drives the orders saga with."""
    resources: ServiceResources = orders_api.http._transport.app.app.state.resources  # type: ignore[attr-defined]
    return WorkerResources(settings=settings, session_factory=resources.session_factory, redis=resources.redis)


async def outbox(db_admin, schema: str, topic: str) -> list[dict[str, Any]]:
    rows = await db_admin.fetch(f"SELECT envelope FROM {schema}.outbox WHERE topic = $1 ORDER BY id", topic)
    return [as_consumed(topic, orjson.loads(bytes(r["envelope"]))["payload"]) for r in rows]


def product_created(product_id: int, seller_id: int, weights: dict[int, int]) -> dict[str, Any]:
    """catalog's product.created, with each variant's weight."""
    stamp = "2026-01-01T00:00:00+00:00"
    return {"product_id": str(product_id), "slug": f"p-{product_id}", "name": "Thing", "brand": None,
            "description": None, "tags": [], "category_id": "1", "seller_id": str(seller_id), "min_price": "1.00",
            "currency": "USD", "created_at": stamp, "updated_at": stamp,
            "variants": [{"variant_id": str(v), "sku": f"SKU-{v}", "price": "1.00", "currency": "USD",
                          "attributes": {}, "weight_grams": grams} for v, grams in weights.items()],
            "category_slugs": [], "category_names": []}


async def zone(api: GraphQLClient, admin: str, name: str, countries: list[str], **extra: Any) -> str:
    return (await api.ok(ZONE, {"input": {"name": name, "countries": countries, **extra}}, admin))[
        "createShippingZone"]["id"]


async def method(api: GraphQLClient, admin: str, zone_id: str, **terms: Any) -> dict[str, Any]:
    return (await api.ok(METHOD, {"zone": zone_id, "input": terms}, admin))["createShippingMethod"]


async def domestic_and_international(api: GraphQLClient, admin: str) -> dict[str, dict[str, Any]]:
    """US: Standard (USPS, 4.99 + 1.00/kg, free from 50.00) and Express (UPS, flat 14.99); international (CA):
    one DHL method up to 10 kg, 9.99 + 3.00/kg."""
    us = await zone(api, admin, "US", ["US"])
    world = await zone(api, admin, "World", ["CA", "GB"])
    return {
        "standard": await method(api, admin, us, name="Standard", carrier="USPS", kind="WEIGHT", price="4.99",
                                 pricePerKg="1.00", freeAbove="50.00", minDays=3, maxDays=5),
        "express": await method(api, admin, us, name="Express", carrier="UPS", kind="FLAT", price="14.99",
                                minDays=1, maxDays=2),
        "world": await method(api, admin, world, name="International", carrier="DHL", kind="WEIGHT", price="9.99",
                              pricePerKg="3.00", maxWeightGrams=10_000, minDays=6, maxDays=12),
    }


def place_input(**overrides: Any) -> dict[str, Any]:
    import uuid
    value: dict[str, Any] = {"shippingAddress": US, "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
                             "idempotencyKey": f"key-{uuid.uuid4().hex}"}
    value.update(overrides)
    return {k: v for k, v in value.items() if v is not None}
