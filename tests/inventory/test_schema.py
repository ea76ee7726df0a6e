"""The inventory subgraph over HTTP, in process: who may adjust stock, what bad input gets, and the
`_entities` stock read the router makes for product pages."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from kernel.ids import next_id
from tests.conftest import GraphQLClient
from tests.inventory.conftest import Stock

ADJUST = """
mutation Adjust($v: ID!, $w: ID!, $d: Int!, $r: String!) {
  adjustStock(variantId: $v, warehouseId: $w, delta: $d, reason: $r) { available reserved onHand inStock }
}"""

ENTITIES = """
query($reps: [_Any!]!) {
  _entities(representations: $reps) { ... on ProductVariant { id stock { available reserved onHand inStock } } }
}"""


def reps(*variant_ids: int | str) -> dict[str, Any]:
    return {"reps": [{"__typename": "ProductVariant", "id": str(v)} for v in variant_ids]}


async def test_admin_adjusts_stock_and_the_change_is_audited(inventory_api: GraphQLClient, stock: Stock,
                                                             token_for: Callable[..., str]) -> None:
    # given a variant with 3 units
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 3})

    # when an admin receives 7 more
    data = await inventory_api.ok(ADJUST, {"v": str(variant), "w": str(warehouse), "d": 7, "r": "PO-1182"},
                                  token_for("ADMIN", user_id=77))

    # then the answer has the new totals, the row and the audit trail agree
    assert data["adjustStock"] == {"available": 10, "reserved": 0, "onHand": 10, "inStock": True}
    assert await stock.row(variant, warehouse) == (10, 0)
    audit = await stock.db.fetchrow("SELECT delta, reason, actor_id, on_hand_after FROM inventory.stock_adjustments "
                                    "WHERE variant_id = $1", variant)
    assert dict(audit) == {"delta": 7, "reason": "PO-1182", "actor_id": 77, "on_hand_after": 10}
    assert [p["on_hand"] for p in await stock.payloads("inventory.stock_changed")] == [10]


@pytest.mark.parametrize(("roles", "expected"), [(None, "UNAUTHENTICATED"), (("CUSTOMER",), "FORBIDDEN"),
                                             (("SELLER",), "FORBIDDEN")])
async def test_only_admins_adjust_stock(inventory_api: GraphQLClient, stock: Stock, token_for: Callable[..., str],
                                        roles: tuple[str, ...] | None, expected: str) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 3})
    token = token_for(*roles) if roles else None

    code = await inventory_api.error_code(ADJUST, {"v": str(variant), "w": str(warehouse), "d": 5, "r": "x"}, token)

    assert code == expected
    assert await stock.row(variant, warehouse) == (3, 0)
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.stock_adjustments") == 0


@pytest.mark.parametrize(("change", "expected"), [
    ({"d": 0}, "BAD_USER_INPUT"),
    ({"d": 1_000_001}, "BAD_USER_INPUT"),
    ({"d": -1_000_001}, "BAD_USER_INPUT"),
    ({"d": 2**31}, "BAD_USER_INPUT"),             # not a GraphQL Int
    ({"r": ""}, "BAD_USER_INPUT"),
    ({"r": "   "}, "BAD_USER_INPUT"),
    ({"r": "x" * 501}, "BAD_USER_INPUT"),
    ({"v": "abc"}, "BAD_USER_INPUT"),
    ({"w": "-4"}, "BAD_USER_INPUT"),
    ({"v": "123456789"}, "NOT_FOUND"),            # a variant inventory does not know
    ({"w": "123456789"}, "NOT_FOUND"),
    ({"d": -4}, "CONFLICT"),                      # more than on hand
])
async def test_bad_adjustments_are_refused_and_change_nothing(inventory_api: GraphQLClient, stock: Stock,
                                                              token_for: Callable[..., str],
                                                              change: dict[str, Any], expected: str) -> None:
    # given a variant with 3 units
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 3})
    variables = {"v": str(variant), "w": str(warehouse), "d": 5, "r": "recount", **change}

    # when an admin sends the bad adjustment
    code = await inventory_api.error_code(ADJUST, variables, token_for("ADMIN"))

    # then it is refused with the stable code, and nothing changed or was announced
    assert code == expected
    assert await stock.row(variant, warehouse) == (3, 0)
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.stock_adjustments") == 0
    assert await stock.events() == []


async def test_the_largest_allowed_delta_is_accepted(inventory_api: GraphQLClient, stock: Stock,
                                                    token_for: Callable[..., str]) -> None:
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 3})
    data = await inventory_api.ok(ADJUST, {"v": str(variant), "w": str(warehouse), "d": 1_000_000, "r": "x" * 500},
                                  token_for("ADMIN"))
    assert data["adjustStock"]["onHand"] == 1_000_003


async def test_entities_resolve_stock_for_known_and_unknown_variants(inventory_api: GraphQLClient,
                                                                     stock: Stock) -> None:
    # given one variant split over two warehouses with 2 reserved, and one inventory never heard of
    east, west = await stock.warehouse(), await stock.warehouse()
    known = await stock.variant({east: 4, west: 1})
    await stock.db.execute("UPDATE inventory.stock_levels SET reserved = 2 WHERE variant_id = $1 AND warehouse_id = $2",
                           known, east)
    unknown = next_id()

    # when the router asks for their stock (anonymously, as product pages do)
    data = await inventory_api.ok(ENTITIES, reps(known, unknown))

    # then totals are summed over warehouses and the unknown variant has none
    assert data["_entities"] == [
        {"id": str(known), "stock": {"available": 3, "reserved": 2, "onHand": 5, "inStock": True}},
        {"id": str(unknown), "stock": {"available": 0, "reserved": 0, "onHand": 0, "inStock": False}}]


async def test_a_page_of_variants_costs_one_stock_query(inventory_api: GraphQLClient, stock: Stock) -> None:
    # given 25 variants
    warehouse = await stock.warehouse()
    variants = [await stock.variant({warehouse: n}) for n in range(25)]
    app = inventory_api.http._transport.app  # type: ignore[attr-defined]  # an ASGITransport (typed as its base)
    engine = app.app.state.resources.session_factory.kw["bind"]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    # when one _entities fetch asks for all of them
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        data = await inventory_api.ok(ENTITIES, reps(*variants))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)

    # then one grouped query answered all 25
    assert [e["stock"]["onHand"] for e in data["_entities"]] == list(range(25))
    assert len([s for s in statements if "stock_levels" in s]) == 1


async def test_cached_stock_answers_are_dropped_when_an_admin_changes_stock(
        inventory_api: GraphQLClient, stock: Stock, token_for: Callable[..., str]) -> None:
    # given a product page's stock answer that has been served (and cached) once
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 3})
    assert (await inventory_api.ok(ENTITIES, reps(variant)))["_entities"][0]["stock"]["available"] == 3

    # when an admin adds 2 units
    await inventory_api.ok(ADJUST, {"v": str(variant), "w": str(warehouse), "d": 2, "r": "found"},
                           token_for("ADMIN"))

    # then the next read sees them
    assert (await inventory_api.ok(ENTITIES, reps(variant)))["_entities"][0]["stock"]["available"] == 5


async def test_per_warehouse_breakdown_is_for_admins(inventory_api: GraphQLClient, stock: Stock,
                                                     token_for: Callable[..., str]) -> None:
    east, west = await stock.warehouse("WH-E1"), await stock.warehouse("WH-W1")
    variant = await stock.variant({east: 4, west: 1})
    query = """query($reps: [_Any!]!) { _entities(representations: $reps) { ... on ProductVariant {
                 stock { byWarehouse { warehouse { code } onHand reserved available } } } } }"""

    data = await inventory_api.ok(query, reps(variant), token_for("ADMIN"))

    assert sorted(data["_entities"][0]["stock"]["byWarehouse"], key=lambda w: w["warehouse"]["code"]) == [
        {"warehouse": {"code": "WH-E1"}, "onHand": 4, "reserved": 0, "available": 4},
        {"warehouse": {"code": "WH-W1"}, "onHand": 1, "reserved": 0, "available": 1}]
    assert await inventory_api.error_code(query, reps(variant), token_for("CUSTOMER")) == "FORBIDDEN"


async def test_warehouses_are_listed_for_admins_only(inventory_api: GraphQLClient, token_for: Callable[..., str],
                                                     stock: Stock) -> None:
    # given a warehouse an admin created
    created = await inventory_api.ok(
        'mutation { createWarehouse(code: "wh-north", name: "North DC") { id code name } }', token=token_for("ADMIN"))

    # when admins and others list warehouses
    listed = await inventory_api.ok("{ warehouses { id code name } }", token=token_for("ADMIN"))

    # then only the admin sees it, with its code upper-cased
    assert listed["warehouses"] == [created["createWarehouse"]]
    assert created["createWarehouse"]["code"] == "WH-NORTH"
    assert await inventory_api.error_code("{ warehouses { id } }", token=token_for("CUSTOMER")) == "FORBIDDEN"
    assert await inventory_api.error_code("{ warehouses { id } }") == "UNAUTHENTICATED"


@pytest.mark.parametrize(("code", "name", "expected"), [
    ("WH-NORTH", "Again", "CONFLICT"), ("x", "Too short a code", "BAD_USER_INPUT"),
    ("WH NORTH", "Space", "BAD_USER_INPUT"), ("WH-2", " ", "BAD_USER_INPUT")])
async def test_create_warehouse_refuses_bad_or_taken_codes(inventory_api: GraphQLClient, token_for: Callable[..., str],
                                                           stock: Stock, code: str, name: str, expected: str) -> None:
    await stock.warehouse("WH-NORTH")
    got = await inventory_api.error_code(
        "mutation($c: String!, $n: String!) { createWarehouse(code: $c, name: $n) { id } }",
        {"c": code, "n": name}, token_for("ADMIN"))
    assert got == expected
    assert await stock.db.fetchval("SELECT count(*) FROM inventory.warehouses") == 1


VARIANT = "query($id: ID!) { variant(id: $id) { id stock { available reserved inStock } } }"


async def test_variant_stock_is_answered_by_inventory_alone(inventory_api: GraphQLClient, stock: Stock,
                                                            token_for: Callable[..., str]) -> None:
    # given a registered variant with 3 units, and an id inventory never heard of
    warehouse = await stock.warehouse()
    variant = await stock.variant({warehouse: 3})

    # when a client checks stock with the root field (no catalog fetch needed for stock)
    known = await inventory_api.ok(VARIANT, {"id": str(variant)})
    unknown = await inventory_api.ok(VARIANT, {"id": str(next_id())})

    # then the known variant answers, the unknown one is null, a malformed id is BAD_USER_INPUT
    assert known["variant"] == {"id": str(variant), "stock": {"available": 3, "reserved": 0, "inStock": True}}
    assert unknown["variant"] is None
    assert await inventory_api.error_code(VARIANT, {"id": "abc"}) == "BAD_USER_INPUT"
    # and the cached answer follows a committed change at once
    await inventory_api.ok(ADJUST, {"v": str(variant), "w": str(warehouse), "d": -1, "r": "damaged"},
                           token_for("ADMIN"))
    assert (await inventory_api.ok(VARIANT, {"id": str(variant)}))["variant"]["stock"]["available"] == 2


async def test_a_variant_registered_after_a_null_answer_is_no_longer_null(inventory_api: GraphQLClient,
                                                                          stock: Stock, redis: Any) -> None:
    # given a stock check for a variant inventory has not heard of yet: null, and that answer cached
    from kernel.consumer import WorkerResources
    from kernel.events import EventEnvelope
    from kernel.uow import unit_of_work
    from subgraphs.inventory.consumers import consumer_specs
    from tests.inventory.test_events import product_event
    await stock.warehouse()
    variant = next_id()
    assert (await inventory_api.ok(VARIANT, {"id": str(variant)}))["variant"] is None

    # when catalog's product.created registers it (through the worker's handler, which has Redis)
    [spec] = consumer_specs(WorkerResources(settings=None, session_factory=stock.sessions, redis=redis))
    async with unit_of_work(stock.sessions) as session:  # commits, then runs the after-commit work, as the worker
        await spec.handler(session, EventEnvelope.new("product.created", product_event(next_id(), variant)))

    # then the next stock check finds it, with zero stock
    assert (await inventory_api.ok(VARIANT, {"id": str(variant)}))["variant"] == {
        "id": str(variant), "stock": {"available": 0, "reserved": 0, "inStock": False}}
