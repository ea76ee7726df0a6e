"""Subscriptions through the router: client -> router over WebSocket or SSE, router -> catalog over WebSocket."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import websockets

from tests.conftest import GraphQLClient

CREATE_CATEGORY = "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id } }"
CREATE_PRODUCT = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }"
UPDATE_PRICE = """mutation($id: ID!, $sku: String!, $price: String!) {
  updateProduct(id: $id, input: {variants: [{sku: $sku, price: $price, currency: "USD"}]}) { id } }"""
SUBSCRIPTION = "subscription($id: ID!) { productUpdated(productId: $id) { id variants { sku price { amount } } } }"


async def create_product(router, token: str) -> tuple[str, str]:
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": f"Live {uuid.uuid4().hex[:6]}"}},
                                token=token))["createCategory"]
    sku = f"LIVE-{uuid.uuid4().hex[:8]}"
    product = (await router.ok(CREATE_PRODUCT, {"input": {
        "name": "Live Lamp", "categoryId": category["id"],
        "variants": [{"sku": sku, "price": "10.00", "currency": "USD"}]}}, token=token))["createProduct"]
    return product["id"], sku


async def update_until_received(router, token: str, product_id: str, sku: str, receive) -> tuple[str, dict]:
    """The router opens its upstream subscription asynchronously, so no single update is sure to be seen:
    update (a new price each time) until an event arrives; bounded, and no fixed sleep."""
    for attempt in range(1, 21):
        price = f"{10 + attempt}.00"
        await router.ok(UPDATE_PRICE, {"id": product_id, "sku": sku, "price": price}, token=token)
        try:
            return price, await asyncio.wait_for(receive(), timeout=1.5)
        except TimeoutError:
            continue
    raise AssertionError("no subscription event after 20 updates")


async def test_product_updates_stream_over_websocket(router, platform, make_user) -> None:
    _, admin = await make_user("ADMIN")
    product_id, sku = await create_product(router, admin)
    url = platform.router_url.replace("http://", "ws://")
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": product_id}}}))

        events: asyncio.Queue[dict] = asyncio.Queue()

        async def read_messages() -> None:
            async for raw in ws:
                message = json.loads(raw)
                assert message["type"] == "next", message
                events.put_nowait(message["payload"])

        reader = asyncio.create_task(read_messages())
        next_event = events.get
        price, payload = await update_until_received(router, admin, product_id, sku, next_event)
        first = payload["data"]["productUpdated"]
        assert first["id"] == product_id
        seen_price = first["variants"][0]["price"]["amount"]
        assert float(seen_price) <= float(price)  # an event for one of our updates, never a future one
        # once subscribed, the very next update is delivered with its new price
        await router.ok(UPDATE_PRICE, {"id": product_id, "sku": sku, "price": "99.00"}, token=admin)
        for _ in range(20):  # earlier in-flight updates may still arrive first
            event = (await asyncio.wait_for(next_event(), 10))["data"]["productUpdated"]
            if event["variants"][0]["price"]["amount"] == "99.00":
                break
        else:
            raise AssertionError("the 99.00 update never arrived")
        reader.cancel()


async def test_a_subgraph_accepts_a_connection_init_with_a_null_payload(platform) -> None:
    """What a gateway sends when its client gave no connection parameters (Grafbase does, for SSE clients)."""
    url = platform.subgraph_url("catalog").replace("http://", "ws://")
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": None}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"


async def test_unknown_product_subscription_is_not_found_over_websocket(platform) -> None:
    url = platform.router_url.replace("http://", "ws://")
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await asyncio.wait_for(ws.recv(), 10)
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": "424242"}}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "NOT_FOUND", message


async def test_product_updates_stream_over_sse(router, platform, make_user) -> None:
    _, admin = await make_user("ADMIN")
    product_id, sku = await create_product(router, admin)
    async with (httpx.AsyncClient(timeout=None) as http,
                http.stream("POST", platform.router_url, headers={"accept": "text/event-stream"},
                            json={"query": SUBSCRIPTION, "variables": {"id": product_id}}) as response):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events: asyncio.Queue[dict] = asyncio.Queue()

        async def read_events() -> None:
            async for line in response.aiter_lines():
                if line.startswith("data:") and line[5:].strip():
                    events.put_nowait(json.loads(line[5:]))

        reader = asyncio.create_task(read_events())
        try:
            _, payload = await update_until_received(router, admin, product_id, sku, events.get)
        finally:
            reader.cancel()
        assert payload["data"]["productUpdated"]["id"] == product_id


class Subscriber:
    """One client of a subscription through the router: its own WebSocket (graphql-transport-ws) or SSE
    stream, anonymous or signed in; keeps every value `pick` takes from an event, and every error."""

    def __init__(self, transport: str, token: str | None, query: str = SUBSCRIPTION,
                 pick: Callable[[dict], Any] = lambda data: data["productUpdated"]["variants"][0]["price"]["amount"]
                 ) -> None:
        self.transport, self.token, self.query, self.pick = transport, token, query, pick
        self.prices: list[Any] = []
        self.errors: list[object] = []
        self.changed = asyncio.Event()

    def _take(self, payload: dict) -> None:
        if payload.get("errors") or not payload.get("data"):
            self.errors.append(payload)
        else:
            self.prices.append(self.pick(payload["data"]))
        self.changed.set()

    async def receives(self, price: Any) -> None:
        while price not in self.prices and not self.errors:
            self.changed.clear()
            if price in self.prices:
                return
            await self.changed.wait()

    async def run(self, router_url: str, object_id: str) -> None:
        try:
            await self._stream(router_url, object_id)
        except Exception as exc:  # noqa: BLE001 - whatever ends a stream early is what the test reports
            self.errors.append(repr(exc))
            self.changed.set()

    async def _stream(self, router_url: str, object_id: str) -> None:
        variables = {"id": object_id}
        if self.transport == "ws":
            init = {"authorization": f"Bearer {self.token}"} if self.token else {}
            async with websockets.connect(router_url.replace("http://", "ws://"),
                                          subprotocols=["graphql-transport-ws"], max_queue=None,
                                          open_timeout=60) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": init}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                          "payload": {"query": self.query, "variables": variables}}))
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "next":
                        self._take(message["payload"])
                    elif message["type"] in ("error", "complete"):
                        self.errors.append(message)
                        self.changed.set()
                        return
        else:
            headers = {"accept": "text/event-stream"}
            if self.token:
                headers["authorization"] = f"Bearer {self.token}"
            async with (httpx.AsyncClient(timeout=None) as http,
                        http.stream("POST", router_url, headers=headers,
                                    json={"query": self.query, "variables": variables}) as response):
                async for line in response.aiter_lines():
                    if line.startswith("data:") and line[5:].strip():
                        self._take(json.loads(line[5:]))


async def test_two_hundred_concurrent_subscribers_of_one_product_all_receive_each_change(
        router, platform, make_user) -> None:
    """The router multiplexes every subscription with the same credentials over one WebSocket to the catalog:
    the streams run concurrently in one connection there, each with its own database work."""
    _, admin = await make_user("ADMIN")
    _, customer = await make_user("CUSTOMER")
    product_id, sku = await create_product(router, admin)
    # Its own client for the updates, whose idle connections expire before the router's keep-alive (5 s) ends
    # them: opening 200 streams on a busy machine can leave a pooled connection idle that long.
    http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(keepalive_expiry=1))
    router = GraphQLClient(http, platform.router_url)
    subscribers = [Subscriber(transport, token) for transport in ("ws", "sse") for token in (None, customer)
                   for _ in range(50)]
    tasks = [asyncio.create_task(s.run(platform.router_url, product_id)) for s in subscribers]
    try:
        # Subscriptions open asynchronously: change the price until every subscriber has seen a change.
        for attempt in range(1, 41):
            await router.ok(UPDATE_PRICE, {"id": product_id, "sku": sku, "price": f"{10 + attempt}.00"}, token=admin)
            waiting = [s.changed.wait() for s in subscribers if not s.prices and not s.errors]
            if not waiting:
                break
            await asyncio.wait([asyncio.ensure_future(w) for w in waiting], timeout=2)
        assert [s.errors for s in subscribers if s.errors] == []
        missing = Counter((s.transport, "signed in" if s.token else "anonymous") for s in subscribers if not s.prices)
        assert not missing, missing

        # every one of them, now subscribed, receives the next change
        await router.ok(UPDATE_PRICE, {"id": product_id, "sku": sku, "price": "99.00"}, token=admin)

        await asyncio.wait_for(asyncio.gather(*(s.receives("99.00") for s in subscribers)), timeout=30)
        assert [s.errors for s in subscribers if s.errors] == []
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()


async def test_a_thousand_flash_sale_stock_subscribers_all_see_the_coalesced_update(
        router, platform, make_user) -> None:
    """A flash sale's crowd: 1,000 streams, half of them anonymous. The router carries all the anonymous ones
    of a router process over ONE WebSocket to promotions, so that one connection holds hundreds of streams
    (Strawberry's default refused the 101st), and they all read the stock from Redis at the same moment."""
    from tests.e2e.test_commerce import eventually, stocked_variant
    from tests.e2e.test_flash_sales import CREATE, ISSUE, PURCHASE, SALE, STOCK_SUBSCRIPTION

    _, admin = await make_user("ADMIN")
    _, variant_id = await stocked_variant(router, admin, 20, price="40.00")
    now = datetime.now(UTC)
    sale_id = (await router.ok(CREATE, {"input": {
        "variantId": variant_id, "salePrice": "10.00", "stock": 10, "perUserLimit": 2,
        "startsAt": (now - timedelta(seconds=1)).isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat()}},
        admin))["createFlashSale"]["id"]

    async def opened() -> bool:
        return (await router.ok(SALE, {"id": sale_id}))["flashSale"]["status"] == "ACTIVE"

    await eventually(opened, what="inventory to hold the sale's stock and promotions to warm it up")
    _, buyer = await make_user()
    subscribers = [Subscriber(transport, token, STOCK_SUBSCRIPTION, lambda data: data["flashSaleStock"])
                   for transport in ("ws", "sse") for token in (None, buyer) for _ in range(250)]
    tasks = [asyncio.create_task(s.run(platform.router_url, sale_id)) for s in subscribers]
    try:
        # every stream starts with the stock as it is
        await asyncio.wait_for(asyncio.gather(*(s.receives(10) for s in subscribers)), timeout=60)
        token = (await router.ok(ISSUE, {"id": sale_id}, buyer))["issueFlashSaleToken"]["token"]
        bought = (await router.ok(PURCHASE, {"id": sale_id, "token": token, "key": uuid.uuid4().hex, "q": 2},
                                  buyer))["purchaseFlashSale"]
        assert (bought["status"], bought["remainingStock"]) == ("SUCCESS", 8)
        await asyncio.wait_for(asyncio.gather(*(s.receives(8) for s in subscribers)), timeout=30)
        assert [s.errors for s in subscribers if s.errors] == []
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
