"""The opt-in Grafbase router (ROUTER_ENGINE=grafbase): a query across subgraphs, a mutation and a subscription
through it, over the shared platform's subgraphs, with the config and command line the launcher uses."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from nexuscart.infra import free_port, wait_for_port
from nexuscart.launcher import GRAFBASE_BINARY, GRAFBASE_DIR, grafbase_argv, write_grafbase_config
from tests.conftest import GraphQLClient
from tests.e2e.test_router_limits import wait_until_ready
from tests.e2e.test_subscriptions import SUBSCRIPTION, UPDATE_PRICE, create_product, update_until_received

pytestmark = pytest.mark.skipif(not GRAFBASE_BINARY.exists(),
                                reason="the Grafbase CLI is not installed (npm ci in router-grafbase/)")

PRODUCT_ACROSS_SUBGRAPHS = """query($id: ID!) { product(id: $id) { id name seller { email } rating { count } } }"""


@pytest.fixture(scope="module")
def grafbase_url(platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Grafbase router over the shared platform's subgraphs; yields its /graphql URL once it is healthy."""
    port = free_port()
    config = write_grafbase_config(Path(tmp_path_factory.mktemp("grafbase")) / "grafbase.toml",
                                   {name: platform.subgraph_url(name) for name in platform.config.subgraph_ports})
    proc = subprocess.Popen(grafbase_argv(config, port), cwd=GRAFBASE_DIR, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 60, proc)
        wait_until_ready(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
async def grafbase(grafbase_url: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, grafbase_url)


async def test_mutation_and_query_across_subgraphs_carry_the_callers_token(grafbase, make_user) -> None:
    email = f"seller-{uuid.uuid4().hex[:8]}@example.com"
    _, admin = await make_user("ADMIN", email=email)
    product_id, _ = await create_product(grafbase, admin)  # two mutations, each authorised by the forwarded token

    product = (await grafbase.ok(PRODUCT_ACROSS_SUBGRAPHS, {"id": product_id}, token=admin))["product"]

    # name from catalog, the seller's email from users, the rating from reviews
    assert product == {"id": product_id, "name": "Live Lamp", "seller": {"email": email}, "rating": {"count": 0}}


async def test_subgraph_error_codes_pass_through(grafbase) -> None:
    assert await grafbase.error_code("mutation { createCategory(input: {name: \"Nope\"}) { id } }") \
        == "UNAUTHENTICATED"
    assert await grafbase.error_code('mutation { addToCart(variantId: "nope", quantity: 1) { id } }') \
        == "BAD_USER_INPUT"


async def test_subscription_over_websocket_reaches_the_strawberry_subgraph(grafbase, grafbase_url: str,
                                                                           make_user) -> None:
    _, admin = await make_user("ADMIN")
    product_id, sku = await create_product(grafbase, admin)
    # Grafbase serves WebSockets on /ws; its /graphql refuses the upgrade.
    async with websockets.connect(grafbase_url.replace("http://", "ws://").replace("/graphql", "/ws"),
                                  subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {admin}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": product_id}}}))

        async def next_payload() -> dict:
            message = json.loads(await ws.recv())
            assert message["type"] == "next", message
            return message["payload"]

        price, payload = await update_until_received(grafbase, admin, product_id, sku, next_payload)
        event = payload["data"]["productUpdated"]
        assert event["id"] == product_id
        assert float(event["variants"][0]["price"]["amount"]) <= float(price)
        await grafbase.ok(UPDATE_PRICE, {"id": product_id, "sku": sku, "price": "99.00"}, token=admin)
        for _ in range(20):  # earlier in-flight updates may still arrive first
            event = (await asyncio.wait_for(next_payload(), 10))["data"]["productUpdated"]
            if event["variants"][0]["price"]["amount"] == "99.00":
                break
        else:
            raise AssertionError("the 99.00 update never arrived")

