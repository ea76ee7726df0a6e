"""Flash sales against real Redis (the Lua script runs for real), Postgres, and the real catalog and orders apps
over local HTTP. Kafka hops are delivered by calling the consuming domain's handler with the event's payload
(the e2e suite covers the broker path)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.graphql import ServiceResources
from kernel.settings import Settings
from kernel.uow import unit_of_work
from subgraphs.promotions import flash_sale_store as store
from subgraphs.promotions import flash_sales
from tests.conftest import GraphQLClient

CREATE = """mutation($input: CreateFlashSaleInput!) { createFlashSale(input: $input) {
  id status totalStock remainingStock perUserLimit salePrice { amount currency } regularPrice { amount }
  name sku variant { id } } }"""
SALE = "query($id: ID!) { flashSale(id: $id) { id status remainingStock totalStock } }"
ISSUE = "mutation($id: ID!) { issueFlashSaleToken(saleId: $id) { token expiresAt } }"
PURCHASE = """mutation($id: ID!, $token: String!, $key: String!, $q: Int) {
  purchaseFlashSale(saleId: $id, token: $token, idempotencyKey: $key, quantity: $q) {
    status remainingStock orderId order { id } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { id status shippingAddress { city } } }"""
ORDER = "query($id: ID!) { order(id: $id) { id status total { amount } items { quantity unitPrice { amount } } } }"
ADDRESS = {"line1": "1 Sale St", "city": "Lyon", "postalCode": "69001", "country": "FR"}


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def api(apps: dict[str, Any]) -> GraphQLClient:
    flash_sales._RULES.clear()
    return apps["promotions"]


async def _variant(apps: dict[str, Any], admin_token: str, price: str = "50.00") -> str:
    catalog: GraphQLClient = apps["catalog"]
    category = await catalog.ok("mutation($i: CreateCategoryInput!) { createCategory(input: $i) { id } }",
                                {"i": {"name": f"Deals {uuid.uuid4().hex[:6]}"}}, admin_token)
    product = await catalog.ok(
        "mutation($i: CreateProductInput!) { createProduct(input: $i) { variants { id } } }",
        {"i": {"name": "Console", "categoryId": category["createCategory"]["id"],
               "variants": [{"sku": f"SKU-{uuid.uuid4().hex[:8]}", "price": price}]}}, admin_token)
    return product["createProduct"]["variants"][0]["id"]


async def _create_sale(api: GraphQLClient, admin_token: str, variant_id: str, *, stock: int, limit: int,
                       starts_in: float = -1, lasts: float = 3600, price: str = "9.99") -> dict[str, Any]:
    data = await api.ok(CREATE, {"input": {
        "variantId": variant_id, "salePrice": price, "stock": stock, "perUserLimit": limit,
        "startsAt": (_now() + timedelta(seconds=starts_in)).isoformat(),
        "endsAt": (_now() + timedelta(seconds=starts_in + lasts)).isoformat()}}, admin_token)
    return data["createFlashSale"]


async def _hold(sessions: async_sessionmaker[AsyncSession], redis: Redis, sale_id: str, *,
                quantity: int, held: bool = True) -> None:
    """Deliver inventory's answer to flashsale.scheduled (what the promotions consumer does)."""
    async with sessions() as session, session.begin():
        await flash_sales.on_stock_held(session, redis, int(sale_id), held=held)


async def _open_sale(api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis, admin: str, *,
                     stock: int, limit: int, **kwargs: Any) -> dict[str, Any]:
    variant_id = await _variant(apps, admin)
    sale = await _create_sale(api, admin, variant_id, stock=stock, limit=limit, **kwargs)
    await _hold(sessions, redis, sale["id"], quantity=stock)
    return sale


async def _buy(api: GraphQLClient, token: str, sale_id: str, *, quantity: int = 1,
               key: str | None = None, purchase_token: str | None = None) -> dict[str, Any]:
    if purchase_token is None:
        purchase_token = (await api.ok(ISSUE, {"id": sale_id}, token))["issueFlashSaleToken"]["token"]
    data = await api.ok(PURCHASE, {"id": sale_id, "token": purchase_token, "key": key or uuid.uuid4().hex,
                                   "q": quantity}, token)
    return data["purchaseFlashSale"]


async def _outbox(db_admin: asyncpg.Pool, schema: str, topic: str) -> list[dict[str, Any]]:
    rows = await db_admin.fetch(f"SELECT envelope FROM {schema}.outbox WHERE topic = $1 ORDER BY id", topic)
    return [orjson.loads(r["envelope"])["payload"] for r in rows]


async def _flash_orders(db_admin: asyncpg.Pool, sale_id: str) -> list[asyncpg.Record]:
    return await db_admin.fetch(
        "SELECT o.id, o.user_id, o.status, o.total, i.quantity, i.unit_price FROM orders.orders o "
        "JOIN orders.order_items i ON i.order_id = o.id WHERE o.flash_sale_id = $1", int(sale_id))


# ---- creating a sale ---------------------------------------------------------------------------------------

async def test_admin_creates_a_sale_that_opens_once_inventory_holds_the_stock(
        api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis, make_user: Any,
        db_admin: asyncpg.Pool) -> None:
    _, admin = await make_user("ADMIN")
    variant_id = await _variant(apps, admin, price="50.00")
    sale = await _create_sale(api, admin, variant_id, stock=10, limit=2)
    assert sale["status"] == "PREPARING"
    assert sale["salePrice"] == {"amount": "9.99", "currency": "USD"} and sale["regularPrice"]["amount"] == "50.00"
    assert sale["variant"]["id"] == variant_id and sale["name"] == "Console"
    [scheduled] = await _outbox(db_admin, "promotions", "flashsale.scheduled")
    assert scheduled["sale_id"] == sale["id"] and scheduled["quantity"] == 10
    await _hold(sessions, redis, sale["id"], quantity=10)
    state = (await api.ok(SALE, {"id": sale["id"]}))["flashSale"]
    assert state == {"id": sale["id"], "status": "ACTIVE", "remainingStock": 10, "totalStock": 10}
    # A redelivered answer must not reset stock that has been sold meanwhile.
    _, buyer = await make_user()
    assert (await _buy(api, buyer, sale["id"]))["status"] == "SUCCESS"
    await _hold(sessions, redis, sale["id"], quantity=10)
    assert (await api.ok(SALE, {"id": sale["id"]}))["flashSale"]["remainingStock"] == 9


async def test_a_sale_inventory_cannot_cover_never_opens(api: GraphQLClient, apps: dict[str, Any], sessions: Any,
                                                         redis: Redis, make_user: Any) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _create_sale(api, admin, await _variant(apps, admin), stock=5, limit=1)
    await _hold(sessions, redis, sale["id"], quantity=5, held=False)
    assert (await api.ok(SALE, {"id": sale["id"]}))["flashSale"]["status"] == "UNAVAILABLE"
    _, buyer = await make_user()
    assert await api.error_code(ISSUE, {"id": sale["id"]}, buyer) == "CONFLICT"


async def test_only_admins_create_sales_and_bad_input_is_refused(api: GraphQLClient, apps: dict[str, Any],
                                                                 make_user: Any, db_admin: asyncpg.Pool) -> None:
    _, admin = await make_user("ADMIN")
    _, customer = await make_user()
    variant_id = await _variant(apps, admin)
    base = {"variantId": variant_id, "salePrice": "9.99", "stock": 10, "perUserLimit": 2,
            "startsAt": _now().isoformat(), "endsAt": (_now() + timedelta(hours=1)).isoformat()}
    assert await api.error_code(CREATE, {"input": base}, customer) == "FORBIDDEN"
    assert await api.error_code(CREATE, {"input": base}) == "UNAUTHENTICATED"
    bad = [{"endsAt": (_now() - timedelta(hours=1)).isoformat()}, {"stock": -1}, {"stock": 0},
           {"perUserLimit": 0}, {"perUserLimit": 11}, {"salePrice": "-1"}, {"salePrice": "abc"},
           {"salePrice": "9.999"}, {"salePrice": "51.00"}, {"variantId": "nope"}]
    for change in bad:
        assert await api.error_code(CREATE, {"input": base | change}, admin) == "BAD_USER_INPUT", change
    assert await api.error_code(CREATE, {"input": base | {"variantId": "999999999"}}, admin) == "NOT_FOUND"
    assert await db_admin.fetchval("SELECT count(*) FROM promotions.flash_sales") == 0


# ---- purchasing --------------------------------------------------------------------------------------------

async def test_purchase_creates_an_order_at_the_sale_price_that_the_buyer_then_pays(
        api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis, make_user: Any,
        db_admin: asyncpg.Pool) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=5, limit=2)
    buyer_id, buyer = await make_user()
    result = await _buy(api, buyer, sale["id"], quantity=2)
    assert result["status"] == "SUCCESS" and result["remainingStock"] == 3
    assert result["order"] == {"id": result["orderId"]}
    orders: GraphQLClient = apps["orders"]
    order = (await orders.ok(ORDER, {"id": result["orderId"]}, buyer))["order"]
    assert order["status"] == "AWAITING_PAYMENT" and order["total"]["amount"] == "19.98"
    assert order["items"] == [{"quantity": 2, "unitPrice": {"amount": "9.99"}}]
    paid = await orders.ok(PAY, {"input": {"orderId": result["orderId"], "shippingAddress": ADDRESS,
                                           "paymentMethod": {"provider": "simulated", "token": "tok_visa"}}}, buyer)
    assert paid["payOrder"]["shippingAddress"] == {"city": "Lyon"}
    [confirmed] = await _outbox(db_admin, "orders", "order.confirmed")
    assert confirmed["payment"]["token"] == "tok_visa" and confirmed["amount"] == "19.98"
    # Paying twice, or someone else paying, changes nothing.
    assert await orders.error_code(PAY, {"input": {"orderId": result["orderId"], "shippingAddress": ADDRESS,
                                                   "paymentMethod": {"provider": "simulated", "token": "tok_visa"}}},
                                   buyer) == "CONFLICT"
    _, other = await make_user()
    assert await orders.error_code(PAY, {"input": {"orderId": result["orderId"], "shippingAddress": ADDRESS,
                                                   "paymentMethod": {"provider": "simulated", "token": "tok_visa"}}},
                                   other) == "FORBIDDEN"
    assert len(await _outbox(db_admin, "orders", "order.confirmed")) == 1
    assert await db_admin.fetchval("SELECT user_id FROM orders.orders WHERE id = $1",
                                   int(result["orderId"])) == buyer_id


async def test_pay_with_a_saved_address_of_ones_own_only(api: GraphQLClient, apps: dict[str, Any], sessions: Any,
                                                         redis: Redis, make_user: Any, db_admin: asyncpg.Pool) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=5, limit=2)
    _, buyer = await make_user()
    _, stranger = await make_user()
    users: GraphQLClient = apps["users"]
    add = "mutation($i: AddressInput!) { addAddress(input: $i) { id } }"
    mine = (await users.ok(add, {"i": ADDRESS}, buyer))["addAddress"]["id"]
    theirs = (await users.ok(add, {"i": ADDRESS | {"city": "Nice"}}, stranger))["addAddress"]["id"]
    order_id = (await _buy(api, buyer, sale["id"]))["orderId"]
    orders: GraphQLClient = apps["orders"]
    card = {"provider": "simulated", "token": "tok_visa"}
    assert await orders.error_code(PAY, {"input": {"orderId": order_id, "shippingAddressId": theirs,
                                                   "paymentMethod": card}}, buyer) == "FORBIDDEN"
    assert await orders.error_code(PAY, {"input": {"orderId": order_id, "paymentMethod": card}},
                                   buyer) == "BAD_USER_INPUT"  # neither address given
    assert await orders.error_code(PAY, {"input": {"orderId": order_id, "shippingAddressId": mine,
                                                   "paymentMethod": {"provider": "nope", "token": "t"}}},
                                   buyer) == "BAD_USER_INPUT"
    assert await _outbox(db_admin, "orders", "order.confirmed") == []  # nothing was attached by the refusals
    paid = await orders.ok(PAY, {"input": {"orderId": order_id, "shippingAddressId": mine, "paymentMethod": card}},
                           buyer)
    assert paid["payOrder"] == {"id": order_id, "status": "AWAITING_PAYMENT", "shippingAddress": {"city": "Lyon"}}
    assert len(await _outbox(db_admin, "orders", "order.confirmed")) == 1


async def test_tokens_are_one_time_and_bound_to_user_and_sale(api: GraphQLClient, apps: dict[str, Any],
                                                              sessions: Any, redis: Redis, make_user: Any) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=10, limit=5)
    other_sale = await _open_sale(api, apps, sessions, redis, admin, stock=10, limit=5)
    _, buyer = await make_user()
    _, thief = await make_user()
    token = (await api.ok(ISSUE, {"id": sale["id"]}, buyer))["issueFlashSaleToken"]["token"]
    assert (await _buy(api, thief, sale["id"], purchase_token=token))["status"] == "INVALID_TOKEN"
    assert (await _buy(api, buyer, other_sale["id"], purchase_token=token))["status"] == "INVALID_TOKEN"
    assert (await _buy(api, buyer, sale["id"], purchase_token=token + "x"))["status"] == "INVALID_TOKEN"
    assert (await _buy(api, buyer, sale["id"], purchase_token="garbage"))["status"] == "INVALID_TOKEN"
    assert (await _buy(api, buyer, sale["id"], purchase_token=token))["status"] == "SUCCESS"
    reused = await _buy(api, buyer, sale["id"], purchase_token=token)
    assert reused["status"] == "INVALID_TOKEN" and reused["remainingStock"] == 9
    assert await api.error_code(PURCHASE, {"id": sale["id"], "token": token, "key": "k" * 10}) == "UNAUTHENTICATED"


async def test_outside_the_window_is_not_active_and_tokens_are_not_issued_early(
        api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis, make_user: Any) -> None:
    _, admin = await make_user("ADMIN")
    _, buyer = await make_user()
    later = await _open_sale(api, apps, sessions, redis, admin, stock=5, limit=1, starts_in=3 * 3600)
    assert await api.error_code(ISSUE, {"id": later["id"]}, buyer) == "CONFLICT"
    assert (await api.ok(SALE, {"id": later["id"]}))["flashSale"]["status"] == "SCHEDULED"
    # Within the early window a token is issued, but the purchase waits for the start.
    soon = await _open_sale(api, apps, sessions, redis, admin, stock=5, limit=1, starts_in=60)
    result = await _buy(api, buyer, soon["id"])
    assert result["status"] == "NOT_ACTIVE" and result["remainingStock"] == 5
    # A sale whose window has passed: NOT_ACTIVE, nothing sold.
    short = await _open_sale(api, apps, sessions, redis, admin, stock=5, limit=1, starts_in=-1, lasts=4)
    token = (await api.ok(ISSUE, {"id": short["id"]}, buyer))["issueFlashSaleToken"]["token"]
    async with asyncio.timeout(30):
        while (await api.ok(SALE, {"id": short["id"]}))["flashSale"]["status"] != "ENDED":  # noqa: ASYNC110 - polls the API
            await asyncio.sleep(0.1)
    ended = await _buy(api, buyer, short["id"], purchase_token=token)
    assert ended["status"] == "NOT_ACTIVE" and ended["remainingStock"] == 5


async def test_limits_quantities_and_replays(api: GraphQLClient, apps: dict[str, Any], sessions: Any,
                                             redis: Redis, make_user: Any, db_admin: asyncpg.Pool) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=10, limit=2)
    _, buyer = await make_user()
    token = (await api.ok(ISSUE, {"id": sale["id"]}, buyer))["issueFlashSaleToken"]["token"]
    for quantity in (0, 3, -1):
        assert await api.error_code(PURCHASE, {"id": sale["id"], "token": token, "key": uuid.uuid4().hex,
                                               "q": quantity}, buyer) == "BAD_USER_INPUT"
    assert await api.error_code(PURCHASE, {"id": sale["id"], "token": token, "key": "short", "q": 1},
                                buyer) == "BAD_USER_INPUT"
    assert await api.error_code(PURCHASE, {"id": "12345", "token": token, "key": uuid.uuid4().hex, "q": 1},
                                buyer) == "NOT_FOUND"
    key = uuid.uuid4().hex
    first = await _buy(api, buyer, sale["id"], key=key, purchase_token=token)
    assert first["status"] == "SUCCESS"
    # The same key again, even concurrently and with a spent token: the same answer, nothing more bought.
    replays = await asyncio.gather(*(_buy(api, buyer, sale["id"], key=key, purchase_token=token) for _ in range(5)))
    assert {(r["status"], r["orderId"]) for r in replays} == {("SUCCESS", first["orderId"])}
    assert (await _buy(api, buyer, sale["id"]))["status"] == "SUCCESS"
    assert (await _buy(api, buyer, sale["id"]))["status"] == "LIMIT_EXCEEDED"
    assert (await api.ok(SALE, {"id": sale["id"]}))["flashSale"]["remainingStock"] == 8
    assert len(await _flash_orders(db_admin, sale["id"])) == 2


async def test_rate_limited_per_user(api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis,
                                     make_user: Any, settings: Settings) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=10, limit=1)
    _, buyer = await make_user()
    statuses = Counter()
    # Far more attempts than the user's burst, back to back: the bucket refuses the excess.
    results = await asyncio.gather(*(api.ok(PURCHASE, {"id": sale["id"], "token": "x.1.y", "key": uuid.uuid4().hex,
                                                       "q": 1}, buyer)
                                     for _ in range(settings.flash_sale_user_burst * 3)))
    statuses.update(r["purchaseFlashSale"]["status"] for r in results)
    assert statuses["RATE_LIMITED"] >= settings.flash_sale_user_burst
    assert statuses["SUCCESS"] == 0
    # Another user is not affected.
    _, other = await make_user()
    assert (await _buy(api, other, sale["id"]))["status"] == "SUCCESS"


async def test_token_issue_is_rate_limited(api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis,
                                           make_user: Any) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=10, limit=1)
    _, buyer = await make_user()
    # The limit counts per calendar minute: 25 requests straddling a minute's end would get two windows' worth.
    # So they start in a minute with at least 15 s left (waiting for the next one to begin if needed).
    if (into_minute := time.time() % 60) > 45:
        await asyncio.sleep(60 - into_minute + 0.05)  # the wait IS the condition: the next minute's start
    codes = []
    for _ in range(25):
        body = await api.raw(ISSUE, {"id": sale["id"]}, buyer)
        codes.append(body["errors"][0]["extensions"]["code"] if body.get("errors") else "OK")
    assert codes.count("OK") == 20 and set(codes[20:]) == {"RATE_LIMITED"}


async def test_5000_attempts_by_1000_users_sell_exactly_100_units(
        api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis, make_user: Any,
        token_issuer: Any, db_admin: asyncpg.Pool, settings: Settings) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=100, limit=2)
    sale_id = sale["id"]
    user_ids = [900_000_000 + n for n in range(1000)]
    tokens = {u: token_issuer.issue(u, ("CUSTOMER",)) for u in user_ids}
    gate = asyncio.Semaphore(200)

    async def attempt(user_id: int) -> dict[str, Any]:
        async with gate:
            return await _buy(api, tokens[user_id], sale_id, quantity=1 + (user_id % 2))

    attempts = [u for u in user_ids for _ in range(5)]
    results = await asyncio.gather(*(attempt(u) for u in attempts))
    statuses = Counter(r["status"] for r in results)
    assert sum(statuses.values()) == 5000
    assert set(statuses) <= {"SUCCESS", "SOLD_OUT", "LIMIT_EXCEEDED"}, statuses
    units_by_user: Counter[int] = Counter()
    for user_id, result in zip(attempts, results, strict=True):
        if result["status"] == "SUCCESS":
            units_by_user[user_id] += 1 + (user_id % 2)
    assert sum(units_by_user.values()) == 100
    assert max(units_by_user.values()) <= 2
    assert (await api.ok(SALE, {"id": sale_id}))["flashSale"] == {
        "id": sale_id, "status": "SOLD_OUT", "remainingStock": 0, "totalStock": 100}
    # Run the reconciler (it hands over anything the request path missed), then every unit is in one order.
    await _reconcile(sessions, redis, settings)
    orders = await _flash_orders(db_admin, sale_id)
    assert sum(o["quantity"] for o in orders) == 100
    assert len({o["id"] for o in orders}) == len(orders) == statuses["SUCCESS"]
    per_user = Counter()
    for order in orders:
        per_user[order["user_id"]] += order["quantity"]
    assert per_user == units_by_user
    assert {o["status"] for o in orders} == {"AWAITING_PAYMENT"}
    holdings = await store.user_holdings(redis, int(sale_id))
    assert {u: n for u, n in holdings.items() if n} == dict(units_by_user)


async def _reconcile(sessions: async_sessionmaker[AsyncSession], redis: Redis, settings: Settings,
                     grace: float = 0.0) -> flash_sales.ReconcileReport:
    from subgraphs.promotions import repository
    report = flash_sales.ReconcileReport()
    settings = settings.model_copy(update={"flash_sale_reconcile_grace_seconds": grace})
    async with sessions() as session:
        sales = await repository.held_sales_to_reconcile(session, _now())
    for sale in sales:
        async with unit_of_work(sessions) as session:  # commits, then runs the after-commit work, as the worker
            await flash_sales.reconcile_sale(session, redis, settings, sale, report)
    return report


async def test_reconciler_turns_a_reservation_without_an_order_into_one(
        api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis, make_user: Any, settings: Settings,
        db_admin: asyncpg.Pool) -> None:
    """A crash between the script and the order: the reservation is in the stream, no order exists."""
    from subgraphs.orders import service as orders_service
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=5, limit=2)
    buyer_id, _ = await make_user()
    async with sessions() as session:
        rules = await flash_sales.sale_rules(session, int(sale["id"]))
    issued_nonce = "crashnonce1"
    await store.issue_token(redis, rules.id, user_id=buyer_id, nonce=issued_nonce, ttl_seconds=60)
    outcome = await store.purchase(redis, rules.id, user_id=buyer_id, quantity=2, nonce=issued_nonce,
                                   idempotency_key="crash-key-1", reservation_id=777_000_001, client_ip="10.0.0.1",
                                   limits=store.BucketLimits(10, 10, 10, 10))
    assert outcome.status == "SUCCESS"  # ... and the process dies before asking orders
    assert await _flash_orders(db_admin, sale["id"]) == []
    early = await _reconcile(sessions, redis, settings, grace=3600)
    assert early.forwarded == 0  # younger than the grace period: the request path may still be at it
    report = await _reconcile(sessions, redis, settings)
    assert report.forwarded == 1
    [payload] = await _outbox(db_admin, "promotions", "flashsale.purchased")
    # orders' consumer creates it from the event, once, however often it is delivered.
    for _ in range(2):
        async with sessions() as session, session.begin():
            await orders_service.create_flash_sale_order(
                session, settings, orders_service.flash_sale_reservation(payload))
    orders = await _flash_orders(db_admin, sale["id"])
    assert [(o["id"], o["user_id"], o["quantity"], o["status"]) for o in orders] == [
        (777_000_001, buyer_id, 2, "AWAITING_PAYMENT")]
    assert (await _reconcile(sessions, redis, settings)).forwarded == 0  # handed over once


async def test_unpaid_orders_return_their_units_and_the_sale_settles_with_inventory(
        api: GraphQLClient, apps: dict[str, Any], sessions: Any, redis: Redis, make_user: Any, settings: Settings,
        db_admin: asyncpg.Pool) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=4, limit=2, lasts=8)
    _, payer = await make_user()
    _, idler = await make_user()
    paid = await _buy(api, payer, sale["id"], quantity=2)
    unpaid = await _buy(api, idler, sale["id"], quantity=2)
    assert (paid["status"], unpaid["status"], unpaid["remainingStock"]) == ("SUCCESS", "SUCCESS", 0)
    # The saga reports one order paid and the other cancelled by the payment timeout.
    assert await flash_sales.on_order_paid(redis, int(paid["orderId"])) == 2
    assert await flash_sales.on_order_cancelled(redis, int(unpaid["orderId"])) == 2
    assert await flash_sales.on_order_cancelled(redis, int(unpaid["orderId"])) == 0  # redelivered
    assert (await api.ok(SALE, {"id": sale["id"]}))["flashSale"]["remainingStock"] == 2
    # The idler's count went back too, so they may buy again while the sale lasts.
    again = await _buy(api, idler, sale["id"])
    assert again["status"] == "SUCCESS"
    # Not settled while it runs.
    assert (await _reconcile(sessions, redis, settings)).settled == 0
    async with asyncio.timeout(30):
        while (await api.ok(SALE, {"id": sale["id"]}))["flashSale"]["status"] != "ENDED":  # noqa: ASYNC110 - polls the API
            await asyncio.sleep(0.2)
    # Ended, but one unit is still reserved by an unpaid order: settlement waits for that order's outcome.
    assert (await _reconcile(sessions, redis, settings)).settled == 0
    assert await flash_sales.on_order_cancelled(redis, int(again["orderId"])) == 1
    report = await _reconcile(sessions, redis, settings)
    assert report.settled == 1
    [ended] = await _outbox(db_admin, "promotions", "flashsale.ended")
    assert ended["sold"] == 2 and ended["sale_id"] == sale["id"]
    assert await db_admin.fetchval("SELECT sold_units FROM promotions.flash_sales WHERE id = $1",
                                   int(sale["id"])) == 2
    # Settled means closed: a late cancellation no longer changes the sale's books.
    assert await flash_sales.on_order_cancelled(redis, int(paid["orderId"])) == 0
    assert (await _reconcile(sessions, redis, settings)).settled == 0


async def test_stock_subscription_pushes_coalesced_updates(api: GraphQLClient, apps: dict[str, Any],
                                                           sessions: Any, redis: Redis, make_user: Any) -> None:
    _, admin = await make_user("ADMIN")
    sale = await _open_sale(api, apps, sessions, redis, admin, stock=50, limit=5)
    resources: ServiceResources = apps["resources"]
    from kernel.graphql import RequestContext
    from subgraphs.promotions.schema import schema
    context = RequestContext(resources, None, None)
    stream = await schema.subscribe(f'subscription {{ flashSaleStock(saleId: "{sale["id"]}") }}',
                                    context_value=context)
    first = await stream.__anext__()
    assert first.data == {"flashSaleStock": 50}
    buyers = [await make_user() for _ in range(10)]
    await asyncio.gather(*(_buy(api, token, sale["id"], quantity=2) for _, token in buyers))
    seen = []
    while not seen or seen[-1] != 30:
        update = await asyncio.wait_for(stream.__anext__(), timeout=10)
        seen.append(update.data["flashSaleStock"])
    assert seen == sorted(seen, reverse=True) and len(seen) < 10  # coalesced: fewer pushes than changes
    await stream.aclose()
