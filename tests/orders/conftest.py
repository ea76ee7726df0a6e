"""Orders fixtures: the in-process orders app wired to a local fake of the cart and users internal endpoints
(a real HTTP server on a free local port, exactly the HTTP contract of docs/commerce-spine.md, so the orders
PeerClient runs its real transport), plus helpers to place orders and to deliver saga events through the
kernel's idempotent consumer."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kernel.auth import TokenVerifier
from kernel.consumer import WorkerResources
from kernel.errors import AppError
from kernel.graphql import ServiceResources
from kernel.settings import Settings
from tests.conftest import GraphQLClient, served_in_process
from tests.event_contracts import as_consumed
from tests.event_driver import EventDriver

PLACE_ORDER = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  id number status subtotal { amount currency } total { amount currency }
  items { id variant { id } productId sku name quantity unitPrice { amount } lineTotal { amount } }
  statusHistory { seq status previousStatus reason } shippingAddress { line1 city postalCode country }
  user { id } cancellationReason } }"""
ORDER = """query($id: ID!) { order(id: $id) { id status cancellationReason
  statusHistory { seq status previousStatus reason } } }"""
CANCEL = "mutation($id: ID!) { cancelOrder(id: $id) { id status cancellationReason } }"
SHIP = "mutation($id: ID!) { markOrderShipped(id: $id) { id status } }"
DELIVER = "mutation($id: ID!) { markOrderDelivered(id: $id) { id status } }"

ADDRESS = {"line1": "1 Analytical Way", "city": "London", "postalCode": "N1 9GU", "country": "GB"}


class FakePeers:
    """The cart's `/internal/checkout`, users' `/internal/addresses/{id}` and inventory's
    `/internal/reservations`, backed by dicts. Like the real owners it decides from the forwarded bearer token
    who may read what. Inventory answers `reservation_outcome` (None: 503, as when inventory is overloaded;
    "REFUSED": 401)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self.reset()
        self.app = Starlette(routes=[Route("/internal/checkout", self.checkout),
                                     Route("/internal/addresses/{id}", self.address),
                                     Route("/internal/reservations", self.reservations, methods=["POST"])])

    def reset(self) -> None:
        self.carts: dict[str, dict[str, Any]] = {}
        self.default_cart: dict[int, str] = {}
        self.addresses: dict[str, dict[str, Any]] = {}
        self.fail_status: int | None = None
        self.fail_message = "injected failure"
        self.seen_authorization: list[str | None] = []
        self.reservation_outcome: str | None = None
        self.reservation_requests: list[dict[str, Any]] = []

    def add_cart(self, user_id: int | None, lines: list[tuple[int, int, str]] | None = None,
                 currency: str = "USD") -> str:
        """lines: (variant_id, quantity, unit_price); returns the cart id (the user's default cart)."""
        cart_id = uuid.uuid4().hex
        lines = lines if lines is not None else [(111, 2, "19.99"), (222, 1, "5.50")]
        self.carts[cart_id] = {"user_id": user_id, "currency": currency, "items": [
            {"item_id": f"it-{n}", "variant_id": str(v), "product_id": str(v * 10), "sku": f"SKU-{v}",
             "name": f"Thing {v}", "quantity": q, "unit_price": p, "currency": currency}
            for n, (v, q, p) in enumerate(lines)]}
        if user_id is not None:
            self.default_cart[user_id] = cart_id
        return cart_id

    def _caller(self, request: Request) -> int | JSONResponse:
        header = request.headers.get("authorization")
        self.seen_authorization.append(header)
        if self.fail_status is not None:
            return JSONResponse({"code": "X", "message": self.fail_message}, status_code=self.fail_status)
        scheme, _, token = (header or "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise ValueError
            return self.verifier.verify(token).user_id
        except (ValueError, AppError):
            return JSONResponse({"code": "UNAUTHENTICATED", "message": "Authentication required"}, status_code=401)

    async def checkout(self, request: Request) -> JSONResponse:
        caller = self._caller(request)
        if isinstance(caller, JSONResponse):
            return caller
        cart_id = request.query_params.get("cart_id") or self.default_cart.get(caller)
        cart = self.carts.get(cart_id or "")
        if cart is None:
            return JSONResponse({"code": "NOT_FOUND", "message": "Cart not found"}, status_code=404)
        if cart["user_id"] is not None and cart["user_id"] != caller:
            return JSONResponse({"code": "FORBIDDEN", "message": "Not your cart"}, status_code=403)
        subtotal = sum(Decimal(i["unit_price"]) * i["quantity"] for i in cart["items"])
        return JSONResponse({"cart_id": cart_id, "user_id": str(cart["user_id"]) if cart["user_id"] else None,
                             "items": cart["items"], "subtotal": f"{subtotal:.2f}", "currency": cart["currency"],
                             "coupon_code": cart.get("coupon_code")})

    async def reservations(self, request: Request) -> JSONResponse:
        caller = self._caller(request)
        if isinstance(caller, JSONResponse):
            return caller
        self.reservation_requests.append(await request.json())
        if self.reservation_outcome is None:
            return JSONResponse({"code": "X", "message": "inventory is away"}, status_code=503)
        if self.reservation_outcome == "REFUSED":
            return JSONResponse({"code": "UNAUTHENTICATED", "message": "refused"}, status_code=401)
        return JSONResponse({"outcome": self.reservation_outcome, "short_variant_ids": [], "duplicate": False})

    async def address(self, request: Request) -> JSONResponse:
        caller = self._caller(request)
        if isinstance(caller, JSONResponse):
            return caller
        address = self.addresses.get(request.path_params["id"])
        if address is None:
            return JSONResponse({"code": "NOT_FOUND", "message": "Address not found"}, status_code=404)
        if address["user_id"] != str(caller):
            return JSONResponse({"code": "FORBIDDEN", "message": "Not your address"}, status_code=403)
        return JSONResponse(address)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the test session's event loop; pytest keeps its own signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_locally(app: Any) -> AsyncIterator[str]:
    """Serves `app` over real HTTP on a free 127.0.0.1 port for the duration; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = _EmbeddedServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped the server from starting
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """A base URL where nothing listens: the port stays bound (no listen) so no one else can take it meanwhile,
    and every connection attempt is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def orders_client(settings: Settings, peers_url: str, *,
                        reserving_stock: bool = False) -> AsyncIterator[GraphQLClient]:
    """The in-process orders app whose cart and users peers are at `peers_url`, and inventory too when
    `reserving_stock` (otherwise placeOrder leaves every order PENDING for the saga, as with
    INVENTORY_SERVICE_URL empty). Its lifespan does not run under ASGITransport, so the resources it would close
    at shutdown are closed here."""
    from subgraphs.orders.app import build_app
    app = build_app(settings.model_copy(update={"cart_service_url": peers_url, "users_service_url": peers_url,
                                                "inventory_service_url": peers_url if reserving_stock else ""}))
    async with served_in_process(app, "http://orders") as http:
        yield GraphQLClient(http, "/graphql")


@pytest.fixture(scope="session")
def fake_peers_app(settings: Settings) -> FakePeers:
    return FakePeers(TokenVerifier.from_settings(settings))


@pytest.fixture(scope="session")
async def fake_peers_url(fake_peers_app: FakePeers) -> AsyncIterator[str]:
    async with serve_locally(fake_peers_app.app) as url:
        yield url


@pytest.fixture
def peers(fake_peers_app: FakePeers) -> FakePeers:
    fake_peers_app.reset()
    return fake_peers_app


@pytest.fixture(scope="session")
async def orders_api(settings: Settings, fake_peers_url: str) -> AsyncIterator[GraphQLClient]:
    async with orders_client(settings, fake_peers_url) as api:
        yield api


@pytest.fixture(scope="session")
async def reserving_orders_api(settings: Settings, fake_peers_url: str) -> AsyncIterator[GraphQLClient]:
    """orders_api, but placeOrder asks the fake inventory to reserve (FakePeers.reservation_outcome)."""
    async with orders_client(settings, fake_peers_url, reserving_stock=True) as api:
        yield api


@pytest.fixture(scope="session")
def orders_resources(orders_api: GraphQLClient) -> ServiceResources:
    app = orders_api.http._transport.app  # CorrelationMiddleware -> Starlette app
    return app.app.state.resources


@pytest.fixture(scope="session")
def worker_resources(orders_resources: ServiceResources) -> WorkerResources:
    return WorkerResources(settings=orders_resources.settings, session_factory=orders_resources.session_factory,
                           redis=orders_resources.redis)


@dataclasses.dataclass
class Customer:
    user_id: int
    token: str
    cart_id: str


@pytest.fixture
def customer(peers: FakePeers, token_issuer):
    """A customer with a two-line cart (no users row needed: orders only knows users by id)."""
    counter = iter(range(10_000, 10**9))

    def make(*roles: str) -> Customer:
        user_id = next(counter) * 7919
        return Customer(user_id, token_issuer.issue(user_id, list(roles) or ["CUSTOMER"]), peers.add_cart(user_id))

    return make


def place_input(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"shippingAddress": ADDRESS,
                             "paymentMethod": {"provider": "simulated", "token": "tok_visa"},
                             "idempotencyKey": f"key-{uuid.uuid4().hex}"}
    value.update(overrides)
    return {k: v for k, v in value.items() if v is not None}


async def place(api: GraphQLClient, who: Customer, **overrides: Any) -> dict[str, Any]:
    return (await api.ok(PLACE_ORDER, {"input": place_input(**overrides)}, token=who.token))["placeOrder"]


def inventory_reserved(order_id: str) -> dict[str, Any]:
    """inventory.reserved as inventory writes it."""
    return {"order_id": order_id, "items": [{"variant_id": "111", "warehouse_id": "1", "quantity": 2}]}


def payment_successful(order_id: str, *, amount: str = "45.48") -> dict[str, Any]:
    """payment.successful as payments writes it."""
    return {"order_id": order_id, "payment_id": "9", "amount": amount, "currency": "USD", "provider": "simulated"}


def payment_failed(order_id: str, *, reason: str = "card_declined") -> dict[str, Any]:
    """payment.failed as payments writes it."""
    return {"order_id": order_id, "payment_id": "9", "reason": reason}


@pytest.fixture
def saga(worker_resources: WorkerResources) -> EventDriver:
    """The orders-saga group, inbox included."""
    from subgraphs.orders.consumers import consumer_specs
    return EventDriver.for_group(worker_resources, consumer_specs, "orders-saga")


async def outbox(db_admin, topic: str | None = None) -> list[dict[str, Any]]:
    import orjson
    rows = await db_admin.fetch("SELECT topic, key, envelope FROM orders.outbox "
                                "WHERE $1::text IS NULL OR topic = $1 ORDER BY id", topic)
    events = [{"topic": r["topic"], "key": r["key"], **orjson.loads(bytes(r["envelope"]))} for r in rows]
    for event in events:  # every payload orders wrote is one its consumers accept
        as_consumed(event["topic"], event["payload"])
    return events
