"""End to end through the router: real subgraph processes, relay, broker, Postgres and Redis."""
from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from kernel.events import EventEnvelope

REGISTER = """mutation($input: RegisterInput!) {
  register(input: $input) { accessToken refreshToken user { id email } } }"""
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken expiresIn } }"
CREATE_CATEGORY = "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id slug } }"
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  id slug name seller { id email } variants { id sku price { amount currency } } } }"""
BROWSE = """query($first: Int, $filter: ProductFilter) { products(first: $first, filter: $filter) {
  totalCount edges { node { id name brand category { name } seller { email }
  variants { sku price { amount currency } } } } } }"""
LEAK_MARKERS = ("Traceback", "SELECT ", "INSERT ", "asyncpg", "sqlalchemy", "File \"")


def product_input(category_id: str, sku: str, price: str = "19.99", **overrides: object) -> dict:
    return {"input": {"name": "Trail Runner", "description": "Light shoe", "brand": "Acme", "categoryId": category_id,
                      "tags": ["running"], "specifications": {"weight_g": 250},
                      "variants": [{"sku": sku, "price": price, "currency": "USD", "attributes": {"size": "42"}}],
                      **overrides}}


def assert_no_leak(body: dict) -> None:
    text = json.dumps(body)
    assert not any(marker in text for marker in LEAK_MARKERS), text


async def test_register_login_me_through_the_router(router) -> None:
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    registered = (await router.ok(REGISTER, {"input": {"email": email, "password": "e2e-password-42",
                                                       "firstName": "Eve", "lastName": "Two"}}))["register"]
    login = (await router.ok(LOGIN, {"e": email, "p": "e2e-password-42"}))["login"]
    me = (await router.ok("{ me { id email firstName roles } }", token=login["accessToken"]))["me"]
    assert me == {"id": registered["user"]["id"], "email": email, "firstName": "Eve", "roles": ["CUSTOMER"]}


async def test_admin_product_appears_with_seller_and_event_reaches_kafka(router, make_user, settings) -> None:
    admin_id, admin = await make_user("ADMIN", email="admin-e2e@example.com")
    consumer = AIOKafkaConsumer("product.created", bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=f"e2e-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        category = (await router.ok(CREATE_CATEGORY, {"input": {"name": "Shoes E2E"}}, token=admin))["createCategory"]
        sku = f"SKU-{uuid.uuid4().hex[:8]}"
        product = (await router.ok(CREATE_PRODUCT, product_input(category["id"], sku), token=admin))["createProduct"]
        assert product["seller"] == {"id": str(admin_id), "email": "admin-e2e@example.com"}

        page = (await router.ok(BROWSE, {"first": 20, "filter": {"categorySlug": category["slug"]}}))["products"]
        assert page["totalCount"] == 1
        node = page["edges"][0]["node"]
        assert node["seller"] == {"email": "admin-e2e@example.com"}
        assert node["category"] == {"name": "Shoes E2E"}
        assert node["variants"] == [{"sku": sku, "price": {"amount": "19.99", "currency": "USD"}}]

        async with asyncio.timeout(30):  # the relay publishes after commit; wait for this product's event
            async for record in consumer:
                envelope = EventEnvelope.from_json(record.value)
                if envelope.payload.get("product_id") == product["id"]:
                    break
        assert envelope.event_type == "product.created"
        assert record.key == product["id"].encode()
        assert [v["sku"] for v in envelope.payload["variants"]] == [sku]
    finally:
        await consumer.stop()


async def test_refresh_rotation_replay_and_lockout_through_the_router(router) -> None:
    email = f"rot-{uuid.uuid4().hex[:8]}@example.com"
    first = (await router.ok(REGISTER, {"input": {"email": email, "password": "rotation-pass-9"}}))["register"]
    refresh = "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }"
    second = (await router.ok(refresh, {"t": first["refreshToken"]}))["refreshToken"]
    assert await router.error_code(refresh, {"t": first["refreshToken"]}) == "UNAUTHENTICATED"
    assert await router.error_code(refresh, {"t": second["refreshToken"]}) == "UNAUTHENTICATED"
    for _ in range(5):
        assert await router.error_code(LOGIN, {"e": email, "p": "wrong-guess-123"}) == "UNAUTHENTICATED"
    assert await router.error_code(LOGIN, {"e": email, "p": "rotation-pass-9"}) == "RATE_LIMITED"


async def test_bad_input_gets_stable_codes_and_writes_nothing(router, make_user, token_issuer, db_admin) -> None:
    _, admin = await make_user("ADMIN")
    customer_id, customer = await make_user("CUSTOMER")
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": "Bad Input"}}, token=admin))["createCategory"]
    taken_sku = f"TAKEN-{uuid.uuid4().hex[:6]}"
    await router.ok(CREATE_PRODUCT, product_input(category["id"], taken_sku), token=admin)
    taken_email = f"taken-{uuid.uuid4().hex[:6]}@example.com"
    await router.ok(REGISTER, {"input": {"email": taken_email, "password": "taken-pass-123"}})
    users_before = await db_admin.fetchval("SELECT count(*) FROM users.users")
    products_before = await db_admin.fetchval("SELECT count(*) FROM catalog.products")

    expired = token_issuer.issue(customer_id, ["CUSTOMER"], ttl_seconds=-60)
    forged = admin[:-6] + ("AAAAAA" if not admin.endswith("AAAAAA") else "BBBBBB")
    cases = [
        (REGISTER, {"input": {"email": "weak@example.com", "password": "short"}}, None, "BAD_USER_INPUT"),
        (REGISTER, {"input": {"email": "not-an-email", "password": "long-enough-pass-1"}}, None, "BAD_USER_INPUT"),
        (REGISTER, {"input": {"email": taken_email, "password": "long-enough-pass-1"}}, None, "CONFLICT"),
        (CREATE_PRODUCT, product_input(category["id"], "NEG-1", "-5.00"), admin, "BAD_USER_INPUT"),
        (CREATE_PRODUCT, product_input(category["id"], "NAN-1", "cheap"), admin, "BAD_USER_INPUT"),
        (CREATE_PRODUCT, product_input(category["id"], taken_sku), admin, "CONFLICT"),
        (CREATE_PRODUCT, product_input("987654321", "NOCAT-1"), admin, "NOT_FOUND"),
        (BROWSE, {"first": 101}, None, "BAD_USER_INPUT"),
        (CREATE_PRODUCT, product_input(category["id"], "ANON-1"), None, "UNAUTHENTICATED"),
        (CREATE_PRODUCT, product_input(category["id"], "CUST-1"), customer, "FORBIDDEN"),
        (CREATE_PRODUCT, product_input(category["id"], "EXP-1"), expired, "UNAUTHENTICATED"),
        (CREATE_PRODUCT, product_input(category["id"], "FORGED-1"), forged, "UNAUTHENTICATED"),
        ("{ me { id } }", None, forged, "UNAUTHENTICATED"),
    ]
    for query, variables, token, code in cases:
        body = await router.raw(query, variables, token=token)
        assert body.get("errors"), (code, variables, body)
        assert body["errors"][0]["extensions"]["code"] == code, (variables, body)
        assert_no_leak(body)
    assert await db_admin.fetchval("SELECT count(*) FROM users.users") == users_before
    assert await db_admin.fetchval("SELECT count(*) FROM catalog.products") == products_before


async def test_graphiql_persisted_queries_and_correlation_id(router, platform) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(platform.router_url, headers={"accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<html" in page.text and "NexusCart GraphQL" in page.text

        manifest = json.loads((platform_router_dir() / "persisted-documents.json").read_text())
        doc_hash, document = next(iter(manifest.items()))
        assert hashlib.sha256(document.encode()).hexdigest() == doc_hash
        persisted = await http.post(platform.router_url, json={
            "variables": {"first": 2}, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": doc_hash}}})
        assert persisted.status_code == 200 and "errors" not in persisted.json(), persisted.text
        unknown = await http.post(platform.router_url, json={
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}})
        assert unknown.json()["errors"]

        traced = await http.post(platform.router_url, json={"query": "{ me { id } }"},
                                 headers={"x-request-id": "trace-me-123"})
        assert traced.status_code == 200 and traced.headers["x-request-id"] == "trace-me-123"


def platform_router_dir():
    from nexuscart.launcher import ROUTER_DIR
    return ROUTER_DIR


@pytest.mark.parametrize("path", ["/health", "/metrics"])
async def test_every_subgraph_serves_health_and_metrics(platform, path: str) -> None:
    async with httpx.AsyncClient() as http:
        for name in platform.config.subgraph_ports:
            response = await http.get(platform.subgraph_url(name).replace("/graphql", path))
            assert response.status_code == 200, (name, response.text)
        relay = await http.get(platform.relay_health_url.replace("/health", path))
        assert relay.status_code == 200, relay.text
        router = await http.get(platform.router_url.replace("/graphql", path))
        assert router.status_code == 200, router.text


async def test_a_callers_answer_sent_twice_at_once_is_never_served_to_another_caller(router, platform,
                                                                                     make_user) -> None:
    """The router used to merge identical concurrent subgraph requests of one caller; the merged one never saw
    the subgraph's `Cache-Control: private`, so its answer went into the shared response cache: the next
    signed-in shopper got the first one's `me`, and searches were served without being logged."""
    alice_id, alice = await make_user()
    bob_id, bob = await make_user()
    _, admin = await make_user("ADMIN")
    for _ in range(10):
        answers = await asyncio.gather(*(router.ok("{ me { id } }", token=alice) for _ in range(8)))
        assert {a["me"]["id"] for a in answers} == {str(alice_id)}
        assert (await router.ok("{ me { id } }", token=bob))["me"]["id"] == str(bob_id)

    # Forty searches served, forty logged (a text no product matches, so it is counted among the zero-result ones).
    query = f"cacheprobe{uuid.uuid4().hex[:8]}"
    search = "query($q: String!) { search(query: $q, first: 5) { totalCount } }"
    for _ in range(5):
        await asyncio.gather(*(router.ok(search, {"q": query}, token=alice) for _ in range(8)))
    insights = "{ searchInsights(days: 1) { zeroResultQueries { query count } } }"

    async def logged() -> int:
        counts = (await router.ok(insights, token=admin))["searchInsights"]["zeroResultQueries"]
        return next((c["count"] for c in counts if c["query"] == query), 0)

    async with asyncio.timeout(30):  # the worker moves served searches into the log every 2 s
        while await logged() < 40:  # noqa: ASYNC110 - polls an API, bounded by the timeout
            await asyncio.sleep(0.2)  # polls searchInsights until every served search is logged
    assert await logged() == 40


async def test_router_response_cache_shares_only_what_every_subgraph_marked_shared(router, platform,
                                                                                     make_user) -> None:
    import time
    alice_id, alice = await make_user()
    bob_id, bob = await make_user()
    # A caller's own data is never shared: each caller gets their own `me`, repeatedly, also when the same
    # document asks for public data next to it (users answers `me` with Cache-Control: private).
    mixed = "{ me { id } categories { id } }"
    for _ in range(3):
        assert (await router.ok("{ me { id } }", token=alice))["me"]["id"] == str(alice_id)
        assert (await router.ok("{ me { id } }", token=bob))["me"]["id"] == str(bob_id)
        assert (await router.ok(mixed, token=alice))["me"]["id"] == str(alice_id)
        assert (await router.ok(mixed, token=bob))["me"]["id"] == str(bob_id)

    _, admin = await make_user("ADMIN")
    category = (await router.ok(CREATE_CATEGORY, {"input": {"name": "Cache TTL"}}, token=admin))["createCategory"]
    sku = f"TTL-{uuid.uuid4().hex[:8]}"
    product = (await router.ok(CREATE_PRODUCT, product_input(category["id"], sku), token=admin))["createProduct"]
    query = ('query($slug: String!) { products(filter: {categorySlug: $slug}) '
             '{ edges { node { variants { price { amount } } } } } }')
    price = lambda data: data["products"]["edges"][0]["node"]["variants"][0]["price"]["amount"]
    update = ('mutation($id: ID!, $sku: String!, $price: String!) '
              '{ updateProduct(id: $id, input: {variants: [{sku: $sku, price: $price}]}) { id } }')
    # A public page (catalog marks it shared) read by one shopper is served to another from the router's cache.
    # Proof: the price changes behind the router's back (straight to catalog, so no eviction), and a second
    # shopper still gets what the first one's read left there. Both go over the same connection, so to the same
    # gateway worker; a slow machine may let the 1 s entry expire in between, hence a few tries.
    async with httpx.AsyncClient(timeout=30) as catalog:
        async def change_price_in_catalog(amount: str) -> None:
            response = await catalog.post(
                platform.subgraph_url("catalog"), headers={"authorization": f"Bearer {admin}"},
                json={"query": update, "variables": {"id": product["id"], "sku": sku, "price": amount}})
            assert not response.json().get("errors"), response.text
            # catalog itself answers the new price (its own cache is exact once the write's bump lands)
            while True:
                read = await catalog.post(platform.subgraph_url("catalog"),
                                          json={"query": query, "variables": {"slug": category["slug"]}})
                if price(read.json()["data"]) == amount:
                    break
                await asyncio.sleep(0.01)  # re-poll interval until catalog's after-commit bump lands

        # Fresh readers each try: a reader's own earlier read must not be what the next try sees.
        readers = [((await make_user())[1], (await make_user())[1]) for _ in range(4)]
        shared = False
        prices = (("19.99", "18.00"), ("18.00", "17.00"), ("17.00", "16.00"), ("16.00", "15.00"))
        for (shown, changed), (first_reader, second_reader) in zip(prices, readers, strict=True):
            waiting_since = time.monotonic()
            while price(await router.ok(query, {"slug": category["slug"]}, token=first_reader)) != shown:
                assert time.monotonic() - waiting_since < 5, "the router's cache kept an entry beyond its TTL"
                await asyncio.sleep(0.05)  # the previous try's entry expiring (TTL 1 s), re-polled
            await change_price_in_catalog(changed)
            if price(await router.ok(query, {"slug": category["slug"]}, token=second_reader)) == shown:
                shared = True
                break
        assert shared, "a signed-in shopper never got the page another shopper's read left in the router's cache"

    await router.ok(update, {"id": product["id"], "sku": sku, "price": "7.50"}, token=admin)
    updated_at = time.monotonic()
    # Staff (ADMIN, SELLER) and any request with Cache-Control: no-cache skip the cache: they read it at once.
    assert price(await router.ok(query, {"slug": category["slug"]}, token=admin)) == "7.50"
    fresh = await router.ok(query, {"slug": category["slug"]}, token=alice, headers={"cache-control": "no-cache"})
    assert price(fresh) == "7.50"
    # Everyone else sees it once the entry expires (TTL 1 s by default); poll with a bound, no fixed sleep.
    for token in (None, alice):
        while price(await router.ok(query, {"slug": category["slug"]}, token=token)) != "7.50":
            assert time.monotonic() - updated_at < 5, "the router's cache kept a stale answer beyond its TTL"
            await asyncio.sleep(0.05)  # re-poll interval; the assertion above bounds the wait
