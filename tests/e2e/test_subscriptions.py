"""Subscriptions through the router: client -> router over WebSocket or SSE, router -> catalog over WebSocket."""
from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import websockets

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
