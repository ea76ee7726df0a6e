"""What the router answers at its edge: malformed HTTP requests, bad variables, the security limits, field
suggestions, subgraph errors (masked only when internal), upstream timeouts and GraphiQL's example query.

Every error body is asserted to be a GraphQL error with an `extensions.code` and a message that says what is
wrong. Most tests go through the e2e platform's router; the masking tests boot a second router whose catalog
is a fake subgraph (this module's), whose promotions subgraph never answers and whose payments subgraph is
not listening."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import websockets

from nexuscart.infra import free_port
from tests.e2e.test_router_limits import private_router

# The defaults documented in router/README.md.
MAX_TOKENS, MAX_DEPTH, MAX_ALIASES = 3000, 12, 30
UPSTREAM_TIMEOUT_MS = 2000

CREATE_CATEGORY = "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id slug } }"
CREATE_PRODUCT = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }"
ADD_TO_CART = "mutation($v: ID!, $q: Int!) { addToCart(variantId: $v, quantity: $q) { id } }"
UPDATE_PRICE = """mutation($id: ID!, $sku: String!, $price: String!) {
  updateProduct(id: $id, input: {variants: [{sku: $sku, price: $price, currency: "USD"}]}) { id } }"""
PRODUCT_UPDATED = "subscription($id: ID!) { productUpdated(productId: $id) { variants { price { amount } } } }"


def only_error(response: httpx.Response) -> dict[str, Any]:
    """The single GraphQL error of a response, which must be a GraphQL error body whatever its status."""
    assert response.headers["content-type"].startswith("application/"), (response.status_code, response.text)
    body = response.json()
    assert "errors" in body and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["extensions"]["code"], body
    return error


# ----------------------------------------------------------------------------------------------- transport


async def test_post_without_a_body_says_the_body_is_empty(platform) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(platform.router_url)
    error = only_error(response)
    assert response.status_code == 400
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "body is empty" in error["message"] and "application/json" in error["message"]


async def test_text_plain_body_names_the_unsupported_content_type(platform) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(platform.router_url, content="{ categories { id } }",
                                   headers={"content-type": "text/plain"})
    error = only_error(response)
    assert response.status_code == 415
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert 'Unsupported Content-Type "text/plain"' in error["message"]
    assert "application/json" in error["message"]


async def test_empty_json_object_says_the_query_is_missing(platform) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(platform.router_url, json={})
    error = only_error(response)
    assert response.status_code == 400
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["message"].startswith('Missing "query"')
    assert "PersistedQueryKeyNotFound" not in error["message"]


async def test_unknown_persisted_document_is_persisted_query_not_found(platform) -> None:
    async with httpx.AsyncClient() as http:
        by_id = await http.post(platform.router_url, json={"documentId": "sha256:" + "0" * 64})
        by_apq = await http.post(platform.router_url, json={
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "1" * 64}}})
    for response, unknown in ((by_id, "0" * 64), (by_apq, "1" * 64)):
        error = only_error(response)
        assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert error["message"].startswith("PersistedQueryNotFound") and unknown in error["message"]


# ----------------------------------------------------------------------------------------------- variables


async def test_out_of_range_int_variable_is_bad_user_input(router) -> None:
    body = await router.raw(ADD_TO_CART, {"v": "1", "q": 2147483648})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert '"$q"' in error["message"] and "2147483648" in error["message"] and "Int" in error["message"]


async def test_missing_required_variable_is_bad_user_input(router) -> None:
    body = await router.raw(ADD_TO_CART, {"v": "1"})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == 'Variable "$q" of required type "Int!" was not provided.'


# ------------------------------------------------------------------------------------------ security limits


def parents(n: int) -> str:
    """`{ categories { parent { ... { id } } } }`: depth n + 2."""
    return "{ categories { " + "parent { " * n + "id" + " }" * n + " } }"


async def test_depth_limit_is_generous_but_real(router) -> None:
    assert "categories" in await router.ok(parents(MAX_DEPTH - 2))
    body = await router.raw(parents(MAX_DEPTH - 1))
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["message"] == f"Query depth limit of {MAX_DEPTH} exceeded, found {MAX_DEPTH + 1}."


async def test_alias_limit(router) -> None:
    def aliased(n: int) -> str:
        return "{ " + " ".join(f"c{i}: categories {{ id }}" for i in range(n)) + " }"

    assert len(await router.ok(aliased(MAX_ALIASES))) == MAX_ALIASES
    body = await router.raw(aliased(MAX_ALIASES + 1))
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["message"] == f"Aliases limit of {MAX_ALIASES} exceeded, found {MAX_ALIASES + 1}."


async def test_token_limit(router) -> None:
    body = await router.raw("{ categories { " + "id " * MAX_TOKENS + "} }")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert f"Token limit of {MAX_TOKENS} exceeded" in error["message"]


async def test_field_suggestions_are_blocked(router) -> None:
    body = await router.raw("{ productz { id } }")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["message"].startswith('Cannot query field "productz" on type "Query".')
    assert "Did you mean" not in error["message"] and "products" not in error["message"]


async def test_parse_errors_keep_their_code(router) -> None:
    body = await router.raw("{ categories { ")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert error["message"].startswith("Syntax Error:")


# --------------------------------------------------------------------------------------------------- GraphiQL


async def test_graphiql_opens_on_a_browse_query_that_runs(router, platform, make_user) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(platform.router_url, headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "NexusCart GraphQL" in page.text
    found = re.search(r'"defaultQuery":("(?:[^"\\]|\\.)*")', page.text)
    assert found, "GraphiQL is rendered without a default query"
    default_query = json.loads(found.group(1))
    assert "query BrowseProducts" in default_query and "products(" in default_query

    _, admin = await make_user("ADMIN")
    category_name = f"GraphiQL {uuid.uuid4().hex[:6]}"
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": category_name}}, token=admin))["createCategory"]
    await router.ok(CREATE_PRODUCT, {"input": {
        "name": "Example Boot", "brand": "Acme", "categoryId": category["id"],
        "variants": [{"sku": f"EX-{uuid.uuid4().hex[:8]}", "price": "49.00", "currency": "USD"}]}}, token=admin)
    # Signed in, so the anonymous response cache cannot answer with a page from before the product existed.
    page = (await router.ok(default_query, token=admin))["products"]
    node = next(edge["node"] for edge in page["edges"] if edge["node"]["name"] == "Example Boot")
    assert node["category"]["name"] == category_name  # catalog
    assert node["seller"] == {"firstName": "Test", "lastName": "User"}  # users
    [variant] = node["variants"]
    assert variant["price"] == {"amount": "49.00", "currency": "USD"}
    assert isinstance(variant["stock"]["available"], int)  # inventory


# ---------------------------------------------------------------------------------- subgraph error masking

LEAKY_MESSAGE = "psycopg.OperationalError at /srv/catalog/db.py: password=hunter2"


class FakeCatalog(BaseHTTPRequestHandler):
    """Answers `category(...)` with a coded NOT_FOUND and everything else with an uncoded error whose message
    carries internals, as an unexpected exception in a subgraph does."""

    def do_POST(self) -> None:
        document = json.loads(self.rfile.read(int(self.headers["content-length"])))["query"]
        if "category(" in document:
            body = {"data": {"category": None}, "errors": [
                {"message": 'No category with the slug "nope".', "path": ["category"],
                 "extensions": {"code": "NOT_FOUND"}}]}
        else:
            body = {"data": None, "errors": [{"message": LEAKY_MESSAGE, "path": ["categories"]}]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def faulty_router() -> Iterator[str]:
    catalog = ThreadingHTTPServer(("127.0.0.1", 0), FakeCatalog)
    threading.Thread(target=catalog.serve_forever, daemon=True).start()
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    closed_port = free_port()  # nothing listens there
    try:
        with private_router({"ROUTER_RATE_LIMIT_PER_MINUTE": "0", "ROUTER_RESPONSE_CACHE_TTL_MS": "0",
                             "ROUTER_UPSTREAM_TIMEOUT_MS": str(UPSTREAM_TIMEOUT_MS),
                             "NEXUSCART_CATALOG_URL": f"http://127.0.0.1:{catalog.server_address[1]}/graphql",
                             "NEXUSCART_PROMOTIONS_URL": f"http://127.0.0.1:{silent.getsockname()[1]}/graphql",
                             "NEXUSCART_PAYMENTS_URL": f"http://127.0.0.1:{closed_port}/graphql"}) as url:
            yield url
    finally:
        catalog.shutdown()
        silent.close()


async def post(url: str, query: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url, json={"query": query})
    assert response.status_code == 200, response.text
    for marker in ("hunter2", "/srv/", "psycopg", "ECONNREFUSED", "127.0.0.1", "http://"):
        assert marker not in response.text, response.text
    return response.json()


async def test_uncoded_subgraph_error_is_masked(faulty_router: str) -> None:
    body = await post(faulty_router, "{ categories { id } }")
    assert body["errors"] == [{"message": "Unexpected error.", "path": ["categories"],
                               "extensions": {"code": "INTERNAL_SERVER_ERROR", "serviceName": "catalog"}}]


async def test_coded_subgraph_error_reaches_the_client(faulty_router: str) -> None:
    body = await post(faulty_router, '{ category(slug: "nope") { id } }')
    assert body["data"] == {"category": None}
    assert body["errors"] == [{"message": 'No category with the slug "nope".', "path": ["category"],
                               "extensions": {"code": "NOT_FOUND", "serviceName": "catalog"}}]


async def test_coded_errors_of_the_real_subgraphs_reach_the_client(router) -> None:
    body = await router.raw(CREATE_CATEGORY, {"input": {"name": "Anonymous"}})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and error["extensions"]["serviceName"] == "catalog"
    assert error["message"] != "Unexpected error."


async def test_unreachable_subgraph_is_masked(faulty_router: str) -> None:
    body = await post(faulty_router, "{ paymentProviders }")
    assert body["errors"] == [{"message": "Unexpected error.", "path": ["paymentProviders"],
                               "extensions": {"code": "INTERNAL_SERVER_ERROR", "serviceName": "payments"}}]


async def test_silent_subgraph_times_out_with_gateway_timeout(faulty_router: str) -> None:
    body = await post(faulty_router, "{ flashSales { id } }")
    [error] = body["errors"]
    assert error["extensions"] == {"code": "GATEWAY_TIMEOUT", "serviceName": "promotions"}
    assert error["message"] == (f"The promotions service did not answer in time "
                                f"(upstream timeout {UPSTREAM_TIMEOUT_MS} ms).")


# ------------------------------------------------------------------------------- response cache fails closed


class CountingCatalog(BaseHTTPRequestHandler):
    """Answers `category(...)` with `Cache-Control: public` (or `private, max-age=0` while `private` is set) and
    `categories` with no Cache-Control at all, each answer carrying the number of requests served so far: an answer
    the router kept shows an old number."""
    served = 0
    private = False
    lock = threading.Lock()

    def do_POST(self) -> None:
        document = json.loads(self.rfile.read(int(self.headers["content-length"])))["query"]
        with CountingCatalog.lock:
            CountingCatalog.served += 1
            served = str(CountingCatalog.served)
        shared = "category(" in document
        body = {"data": {"category": {"id": served}} if shared else {"categories": [{"id": served}]}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if shared:
            self.send_header("cache-control", "private, max-age=0" if CountingCatalog.private else "public")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def caching_router() -> Iterator[str]:
    catalog = ThreadingHTTPServer(("127.0.0.1", 0), CountingCatalog)
    threading.Thread(target=catalog.serve_forever, daemon=True).start()
    try:
        # One process, so one in-memory cache; a TTL no slow machine outlives.
        with private_router({"ROUTER_RATE_LIMIT_PER_MINUTE": "0", "FORK": "1",
                             "ROUTER_RESPONSE_CACHE_TTL_MS": "60000",
                             "NEXUSCART_CATALOG_URL": f"http://127.0.0.1:{catalog.server_address[1]}/graphql"}) as url:
            yield url
    finally:
        catalog.shutdown()


async def test_an_answer_no_subgraph_marked_public_is_never_cached(caching_router: str) -> None:
    """The router shares an answer only when its subgraph said `public`: without any Cache-Control (a new
    service, a proxy that strips headers) every request reaches the subgraph, signed in or not. An answer marked
    `public` is kept, so the cache itself is on in this router."""
    signed_in = {"authorization": "Bearer not-checked-by-the-fake"}
    async with httpx.AsyncClient(timeout=30) as http:
        async def served(query: str, headers: dict[str, str]) -> str:
            response = await http.post(caching_router, json={"query": query}, headers=headers)
            assert response.status_code == 200 and "errors" not in response.json(), response.text
            data = response.json()["data"]
            return data["category"]["id"] if "category" in data else data["categories"][0]["id"]

        for headers in ({}, signed_in):
            unmarked = [await served("{ categories { id } }", headers) for _ in range(3)]
            assert len(set(unmarked)) == 3, f"an answer without Cache-Control came from the cache: {unmarked}"
            marked = [await served('{ category(slug: "kept") { id } }', headers) for _ in range(3)]
            assert len(set(marked)) == 1, f"a public answer was not kept: {marked}"


async def test_a_query_that_was_private_is_cached_again_once_its_answer_is_shared(caching_router: str) -> None:
    """A query whose answers keep coming back private skips the router's cache for a second at a time (it saves
    the cache's work on every search); once the subgraph shares the answer again, the router keeps it again."""
    query = '{ category(slug: "sometimes-private") { id } }'
    async with httpx.AsyncClient(timeout=30) as http:
        async def served() -> str:
            response = await http.post(caching_router, json={"query": query})
            assert response.status_code == 200 and "errors" not in response.json(), response.text
            return str(response.json()["data"]["category"]["id"])

        CountingCatalog.private = True
        try:
            private = [await served() for _ in range(6)]
            assert len(set(private)) == 6, f"a private answer came from the cache: {private}"
        finally:
            CountingCatalog.private = False
        started = time.monotonic()
        while (first := await served()) != await served():
            assert time.monotonic() - started < 10, "a query once private was never cached again"
            await asyncio.sleep(0.05)  # the skip ends a second after the last private answer; re-polled
        assert first != private[-1]


# --------------------------------------------------------------------------------- upstream timeout vs streams

SHORT_TIMEOUT_MS = 1000


@pytest.fixture(scope="module")
def short_timeout_router(platform) -> Iterator[str]:
    with private_router({"ROUTER_RATE_LIMIT_PER_MINUTE": "0", "ROUTER_UPSTREAM_TIMEOUT_MS": str(SHORT_TIMEOUT_MS),
                         **{f"NEXUSCART_{name.upper()}_URL": platform.subgraph_url(name)
                            for name in platform.config.subgraph_ports}}) as url:
        yield url


async def test_subscription_outlives_the_upstream_timeout(short_timeout_router: str, router, make_user) -> None:
    """The upstream timeout is for requests: a subgraph stream stays open however long it lives. (The built-in
    aborts a stream when its timer fires, so the router exempts subscriptions.) Mutations go through the
    platform's router, whose timeout is the default."""
    _, admin = await make_user("ADMIN")
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": f"Stream {uuid.uuid4().hex[:6]}"}},
                                token=admin))["createCategory"]
    sku = f"ST-{uuid.uuid4().hex[:8]}"
    product_id = (await router.ok(CREATE_PRODUCT, {"input": {
        "name": "Long Stream", "categoryId": category["id"],
        "variants": [{"sku": sku, "price": "10.00", "currency": "USD"}]}}, token=admin))["createProduct"]["id"]
    async with websockets.connect(short_timeout_router.replace("http://", "ws://"),
                                  subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": PRODUCT_UPDATED, "variables": {"id": product_id}}}))

        async def price_after_update(price: str, wait: float = 1.5) -> str:
            await router.ok(UPDATE_PRICE, {"id": product_id, "sku": sku, "price": price}, token=admin)
            message = json.loads(await asyncio.wait_for(ws.recv(), wait))
            assert message["type"] == "next", message
            return message["payload"]["data"]["productUpdated"]["variants"][0]["price"]["amount"]

        # The router opens its upstream subscription asynchronously: update until the stream speaks.
        for attempt in range(1, 21):
            try:
                await price_after_update(f"{10 + attempt}.00")
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no subscription event after 20 updates")
        # Let the stream outlive the timeout (what is tested is that time passes, not a condition).
        await asyncio.sleep(3 * SHORT_TIMEOUT_MS / 1000)
        for _ in range(20):  # events of earlier updates may still be in flight
            if await price_after_update("99.00", wait=10) == "99.00":
                break
        else:
            raise AssertionError("the 99.00 update never arrived")
