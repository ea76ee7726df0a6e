"""Partner API keys through the router: keys, allowlists, scopes checked in the subgraphs, per-key limits, cost.

A router of its own (settings below) reaches every subgraph through a counting proxy, so each refusal can be
shown to have reached no subgraph at all."""
from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from nexuscart.infra import node_binary
from nexuscart.launcher import REPO_ROOT, ROUTER_DIR
from tests.e2e.test_router_limits import private_router

MAX_COST = 1000
KEY_COST_PER_MINUTE = 1500
ALLOWED_ORIGIN = "https://shop.example"


class CountingProxy:
    """Forwards `POST /<subgraph>/graphql` to that subgraph and counts the requests per subgraph."""

    def __init__(self, upstreams: dict[str, str]) -> None:
        self.counts: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                name = self.path.strip("/").split("/")[0]
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                proxy.counts[name] += 1
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection", "accept-encoding")}
                answer = httpx.post(upstreams[name], content=body, headers=headers, timeout=30)
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxy(platform: Any) -> Iterator[CountingProxy]:
    counting = CountingProxy({name: platform.subgraph_url(name) for name in platform.config.subgraph_ports})
    yield counting
    counting.close()


@pytest.fixture(scope="module")
def partner_router(platform: Any, proxy: CountingProxy) -> Iterator[str]:
    with private_router({
        "FORK": "1", "REDIS_URL": platform.infra.redis_url,
        "JWT_PRIVATE_KEY_FILE": platform.env["JWT_PRIVATE_KEY_FILE"], "ROUTER_RATE_LIMIT_PER_MINUTE": "0",
        "ROUTER_MAX_COST": str(MAX_COST), "ROUTER_KEY_COST_PER_MINUTE": str(KEY_COST_PER_MINUTE),
        "ROUTER_CORS_ORIGINS": ALLOWED_ORIGIN, "ROUTER_INTROSPECTION": "false",
        "ROUTER_INTROSPECTION_ALLOWLIST": "schema-explorer",
        "PARTNERS_SERVICE_URL": platform.subgraph_url("partners").removesuffix("/graphql"),
        **{f"NEXUSCART_{name.upper()}_URL": f"http://127.0.0.1:{proxy.port}/{name}/graphql"
           for name in platform.config.subgraph_ports}}) as url:
        yield url


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def document_id(app: str, name: str) -> str:
    """The id persist.mjs gave router/operations/<app>/<name>.graphql."""
    manifest = json.loads((ROUTER_DIR / "persisted" / f"{app}.json").read_text())
    [op] = [op for op in manifest["operations"] if op["name"] == name]
    return str(op["id"])


CREATE = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  secret apiKey { id name scopes persistedOnly rateLimitPerMinute createdAt lastUsedAt revokedAt } } }"""


async def create_key(http: httpx.AsyncClient, url: str, admin: str, *, name: str = "example-partner",
                     scopes: list[str] | None = None, persisted_only: bool = False,
                     rate_limit: int = 600) -> dict[str, Any]:
    answer = (await http.post(url, json={"query": CREATE, "variables": {"input": {
        "name": name, "scopes": scopes if scopes is not None else ["catalog:read"], "persistedOnly": persisted_only,
        "rateLimitPerMinute": rate_limit}}}, headers={"authorization": f"Bearer {admin}"})).json()
    assert not answer.get("errors"), answer
    return dict(answer["data"]["createApiKey"])


async def post(http: httpx.AsyncClient, url: str, key: str | None, body: dict[str, Any],
               **headers: str) -> httpx.Response:
    return await http.post(url, json=body, headers={**({"x-api-key": key} if key else {}), **headers})


def code_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


async def test_admin_creates_a_key_whose_secret_is_stored_only_as_a_hash(partner_router: str, http, token_for,
                                                                         infra: Any) -> None:
    admin = token_for("ADMIN")
    created = await create_key(http, partner_router, admin, scopes=["catalog:read", "orders:read"])
    assert created["secret"].startswith("nxc_")
    assert created["apiKey"]["scopes"] == ["catalog:read", "orders:read"]
    assert created["apiKey"]["revokedAt"] is None and created["apiKey"]["lastUsedAt"] is None
    conn = await asyncpg.connect(infra.database_url)
    try:
        stored = await conn.fetchval("SELECT secret_hash FROM partners.api_keys WHERE id = $1",
                                     int(created["apiKey"]["id"]))
    finally:
        await conn.close()
    assert stored == hashlib.sha256(created["secret"].encode()).hexdigest()
    listed = (await post(http, partner_router, None, {"query": "{ apiKeys { id name } }"},
                         authorization=f"Bearer {admin}")).json()
    assert {"id": created["apiKey"]["id"], "name": "example-partner"} in listed["data"]["apiKeys"]
    # Not for customers.
    forbidden = await post(http, partner_router, None, {"query": CREATE, "variables": {"input": {
        "name": "x-y", "scopes": []}}}, authorization=f"Bearer {token_for('CUSTOMER')}")
    assert code_of(forbidden) == "FORBIDDEN"


async def test_key_calls_report_cost_and_usage_and_revocation_is_immediate(partner_router: str, http, token_for,
                                                                            proxy: CountingProxy) -> None:
    admin = token_for("ADMIN")
    created = await create_key(http, partner_router, admin)
    key, key_id = created["secret"], created["apiKey"]["id"]
    answer = await post(http, partner_router, key, {"query": "{ categories { id } }"})
    assert answer.status_code == 200 and not answer.json().get("errors"), answer.text
    cost = answer.json()["extensions"]["cost"]
    assert cost["requested"] == 10  # a list of objects without a size argument: the default size, 10
    assert cost["actual"] == len(answer.json()["data"]["categories"])

    revoked = await post(http, partner_router, None, {"query": "mutation($id: ID!) { revokeApiKey(id: $id) "
                                                               "{ revokedAt } }", "variables": {"id": key_id}},
                         authorization=f"Bearer {admin}")
    assert revoked.json()["data"]["revokeApiKey"]["revokedAt"] is not None
    before = proxy.total()
    refused = await post(http, partner_router, key, {"query": "{ categories { id } }"})
    assert refused.status_code == 401 and code_of(refused) == "UNAUTHENTICATED"
    unknown = await post(http, partner_router, "nxc_not-a-key", {"query": "{ categories { id } }"})
    assert unknown.status_code == 401 and code_of(unknown) == "UNAUTHENTICATED"
    assert proxy.total() == before

    usage_query = {"query": "query($id: ID!) { apiKeyUsage(id: $id, days: 2) { date requests errors cost } }",
                   "variables": {"id": key_id}}
    deadline = time.monotonic() + 10
    while True:  # the router counts after it has answered
        usage = (await post(http, partner_router, None, usage_query, authorization=f"Bearer {admin}")).json()
        today = usage["data"]["apiKeyUsage"][-1]
        if today["requests"] >= 2 or time.monotonic() > deadline:
            break
    assert len(usage["data"]["apiKeyUsage"]) == 2
    assert (today["requests"], today["errors"], today["cost"]) == (2, 1, cost["actual"])
    keys = (await post(http, partner_router, None, {"query": "{ apiKeys { id lastUsedAt } }"},
                       authorization=f"Bearer {admin}")).json()["data"]["apiKeys"]
    assert next(k for k in keys if k["id"] == key_id)["lastUsedAt"] is not None


async def test_persisted_only_key_runs_only_its_own_allowlist(partner_router: str, http, token_for,
                                                              proxy: CountingProxy) -> None:
    key = (await create_key(http, partner_router, token_for("ADMIN"), name="example-partner",
                            persisted_only=True))["secret"]
    own = await post(http, partner_router, key, {"documentId": document_id("example-partner", "PartnerCategories")})
    assert not own.json().get("errors"), own.text
    assert isinstance(own.json()["data"]["categories"], list)

    before = proxy.total()
    raw = await post(http, partner_router, key, {"query": "{ categories { id } }"})
    assert code_of(raw) == "PERSISTED_QUERY_ONLY"
    other = await post(http, partner_router, key,
                       {"documentId": document_id("example-affiliate", "AffiliateProducts")})
    assert code_of(other) == "PERSISTED_QUERY_NOT_IN_LIST"
    assert proxy.total() == before
    # A client without a key may still send any document, and any persisted one.
    assert not (await post(http, partner_router, None, {"query": "{ categories { id } }"})).json().get("errors")
    assert not (await post(http, partner_router, None, {"documentId": document_id(
        "example-affiliate", "AffiliateProducts")})).json().get("errors")


async def test_scopes_are_checked_by_the_subgraph_that_owns_the_data(partner_router: str, http,
                                                                     token_for) -> None:
    key = (await create_key(http, partner_router, token_for("ADMIN"), scopes=["catalog:read"]))["secret"]
    granted = await post(http, partner_router, key, {"query": "{ categories { id } }"})
    assert not granted.json().get("errors"), granted.text
    refused = await post(http, partner_router, key, {"query": '{ searchSuggestions(prefix: "ch") { text } }'})
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["serviceName"] == "search"
    assert "search:read" in error["message"]
    # A client cannot pose as a key: its own partner header is not forwarded, so it is first-party.
    first_party = await post(http, partner_router, None, {"query": '{ searchSuggestions(prefix: "ch") { text } }'},
                             **{"x-nexuscart-partner": "forged"})
    assert not first_party.json().get("errors"), first_party.text


async def test_a_partners_subscription_is_scope_checked_by_its_subgraph(platform: Any, http, token_for) -> None:
    # On the platform's own router: the counting proxy does not carry the router's subgraph WebSockets.
    url = platform.router_url
    key = (await create_key(http, url, token_for("ADMIN"), scopes=["catalog:read"]))["secret"]
    body = {"query": 'subscription { flashSaleStock(saleId: "1") }'}
    headers = {"x-api-key": key, "accept": "text/event-stream"}
    async with http.stream("POST", url, json=body, headers=headers) as stream:
        first = None
        async for line in stream.aiter_lines():
            if line.startswith("data:") and line[5:].strip():
                first = json.loads(line[5:])
                break
    assert first is not None
    [error] = first["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN", error
    assert "promotions:read" in error["message"]


async def test_request_rate_limit_per_key(partner_router: str, http, token_for, proxy: CountingProxy) -> None:
    key = (await create_key(http, partner_router, token_for("ADMIN"), rate_limit=2))["secret"]
    other = (await create_key(http, partner_router, token_for("ADMIN"), rate_limit=2))["secret"]
    for _ in range(2):
        assert (await post(http, partner_router, key, {"query": "{ categories { id } }"})).status_code == 200
    before = proxy.total()
    limited = await post(http, partner_router, key, {"query": "{ categories { id } }"})
    assert limited.status_code == 429 and code_of(limited) == "RATE_LIMITED"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert proxy.total() == before
    # Another key has its own budget.
    assert (await post(http, partner_router, other, {"query": "{ categories { id } }"})).status_code == 200


EXPENSIVE = "products(first: 40) { edges { node { id variants { id } } } }"  # 1 + 40 x (1 + 1 + 10) = 481


def aliased(*aliases: str, operation: str = "") -> str:
    return operation + "{ " + " ".join(f"{alias}: {EXPENSIVE}" for alias in aliases) + " }"



@pytest.mark.parametrize("query", [
    "{ products(first: 500) { edges { node { id variants { id } } } } }",
    aliased("a", "b", "c"),
    aliased("a", "b", "c", operation="query __schema "),
    aliased("__schema", "b", "c"),
], ids=["large-page", "aliases", "operation-named-__schema", "alias-named-__schema"])
async def test_operation_above_the_cost_limit_is_refused_before_execution(partner_router: str, http,
                                                                          proxy: CountingProxy, query: str) -> None:
    before = proxy.total()
    answer = await post(http, partner_router, None, {"query": query})
    [error] = answer.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
    requested = error["extensions"]["cost"]["requested"]
    assert requested > MAX_COST and str(requested) in error["message"]
    assert answer.json()["extensions"]["cost"] == {"requested": requested, "actual": 0}
    assert proxy.total() == before


async def test_key_cost_budget_is_a_leaky_bucket(partner_router: str, http, token_for,
                                                 proxy: CountingProxy) -> None:
    key = (await create_key(http, partner_router, token_for("ADMIN")))["secret"]
    query = {"query": aliased("a", "b")}  # 962: one fits in 1500, two do not
    first = await post(http, partner_router, key, query)
    assert first.json()["extensions"]["cost"]["requested"] == 962, first.text
    before = proxy.total()
    second = await post(http, partner_router, key, query)
    assert second.status_code == 429 and code_of(second) == "RATE_LIMITED", second.text
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert proxy.total() == before


async def test_cors_allows_only_the_configured_origins(partner_router: str, http) -> None:
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = await http.options(partner_router, headers={"origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    for request in (http.options(partner_router, headers={"origin": "https://evil.example", **preflight}),
                    http.post(partner_router, json={"query": "{ categories { id } }"},
                              headers={"origin": "https://evil.example"})):
        answer = await request
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-credentials" not in answer.headers


async def test_introspection_is_off_outside_the_allowlist(partner_router: str, http, token_for) -> None:
    query = {"query": "{ __schema { queryType { name } } }"}
    refused = await post(http, partner_router, None, query)
    assert code_of(refused) == "GRAPHQL_VALIDATION_FAILED"
    explorer = (await create_key(http, partner_router, token_for("ADMIN"), name="schema-explorer"))["secret"]
    allowed = await post(http, partner_router, explorer, query)
    assert allowed.json()["data"]["__schema"]["queryType"]["name"] == "Query", allowed.text


def test_app_manifests_are_up_to_date() -> None:
    result = subprocess.run([node_binary(), str(ROUTER_DIR / "persist.mjs"), "--check"], capture_output=True,
                            text=True, cwd=Path(REPO_ROOT))
    assert result.returncode == 0, result.stderr
