"""Catalog business rules and cache-aside, called directly (real Postgres and Redis, no GraphQL)."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.auth import Principal
from kernel.db import create_session_factory
from kernel.errors import BadUserInput, Forbidden
from kernel.money import format_money
from subgraphs.catalog import cache, service
from subgraphs.catalog.errors import CategoryNotFound, DuplicateSku, InvalidCursor, SkuTaken
from tests.catalog.helpers import drop_catalog_keys

ADMIN = Principal(user_id=1, roles=frozenset({"ADMIN"}))
SELLER = Principal(user_id=2, roles=frozenset({"SELLER"}))
OTHER_SELLER = Principal(user_id=3, roles=frozenset({"SELLER"}))
CUSTOMER = Principal(user_id=4, roles=frozenset({"CUSTOMER"}))


def product_in(category_id: int, name: str = "Desk Lamp", *skus: str, price: str = "24.50") -> service.ProductIn:
    return service.ProductIn(name=name, category_id=category_id, brand="Lumen",
                             variants=[service.VariantIn(sku=s, price=price, attributes={"color": s})
                                       for s in (skus or ("LAMP-1",))])


async def new_category(session, redis, name: str = "Lighting", parent_id: int | None = None):
    record = await service.create_category(session, redis, caller=ADMIN,
                                           category_in=service.CategoryIn(name=name, parent_id=parent_id))
    await session.commit()
    return record


# ---- pure rules ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [("19.99", "19.99"), ("5", "5.00"), ("19.990", "19.99"),
                                               (" 7.5 ", "7.50"), ("9999999999.99", "9999999999.99")])
def test_parse_price_accepts_decimal_strings(raw: str, expected: str) -> None:
    assert service.parse_price(raw) == Decimal(expected)
    assert format_money(service.parse_price(raw)) == expected


@pytest.mark.parametrize("raw", ["0", "0.00", "-1", "1.999", "abc", "1e3", "NaN", "Infinity", "", "1,50", "0x10",
                                 "10000000000.00"])
def test_parse_price_rejects_everything_else(raw: str) -> None:
    with pytest.raises(BadUserInput) as refused:
        service.parse_price(raw, field="variants.price")
    assert refused.value.field == "variants.price"


def test_parse_price_allows_zero_for_filters() -> None:
    assert service.parse_price("0", allow_zero=True) == Decimal("0.00")


def test_slugify() -> None:
    assert service.slugify("Crème Brûlée -- Deluxe!") == "creme-brulee-deluxe"
    assert service.slugify("日本") == ""
    assert len(service.slugify("x" * 300)) == 80


def test_cursor_round_trip_and_rejection() -> None:
    cursor = service._encode_cursor("PRICE_ASC", Decimal("12.50"), 42)
    assert service.decode_cursor("PRICE_ASC", cursor) == (Decimal("12.50"), 42)
    for bad in ("", "%%%", cursor + "x", service._encode_cursor("NAME", "Boot", 1)):
        with pytest.raises(InvalidCursor):
            service.decode_cursor("PRICE_ASC", bad)


def test_category_tree_subtree() -> None:
    tree = service.CategoryTree([service.CategoryRecord(1, None, "a", "A", "a"),
                                 service.CategoryRecord(2, 1, "b", "B", "a/b"),
                                 service.CategoryRecord(3, 2, "c", "C", "a/b/c"),
                                 service.CategoryRecord(4, None, "d", "D", "d")])
    assert sorted(tree.subtree_ids(1)) == [1, 2, 3]
    assert tree.subtree_ids(4) == [4]


# ---- writes -------------------------------------------------------------------------------------------------

async def test_create_product_writes_rows_and_the_created_event(session, redis, db_admin) -> None:
    category = await new_category(session, redis)
    doc = await service.create_product(session, redis, caller=SELLER,
                                       product_in=product_in(category.id, "Desk Lamp", "L-1", "L-2"))
    await session.commit()
    assert doc["seller_id"] == SELLER.user_id and doc["slug"] == "desk-lamp"
    assert [v["sku"] for v in doc["variants"]] == ["L-1", "L-2"]
    envelope = orjson.loads(await db_admin.fetchval("SELECT envelope FROM catalog.outbox"))
    assert envelope["event_type"] == "product.created"
    assert envelope["payload"]["product_id"] == str(doc["id"])
    assert envelope["payload"]["seller_id"] == str(SELLER.user_id)
    assert envelope["payload"]["variants"] == [
        {"variant_id": str(v["id"]), "sku": v["sku"], "price": "24.50", "currency": "USD",
         "attributes": {"color": v["sku"]}, "weight_grams": 500}
        for v in doc["variants"]]


@pytest.mark.parametrize(("caller", "make_input", "error"), [
    (CUSTOMER, lambda c: product_in(c), Forbidden),
    (ADMIN, lambda c: product_in(c, "Lamp", "A", "A"), DuplicateSku),
    (ADMIN, lambda c: product_in(123456, "Lamp"), CategoryNotFound),
    (ADMIN, lambda c: product_in(c, "  "), BadUserInput),
    (ADMIN, lambda c: service.ProductIn(name="Lamp", category_id=c, variants=[]), BadUserInput),
    (ADMIN, lambda c: service.ProductIn(name="Lamp", category_id=c,
                                        variants=[service.VariantIn(sku="A", price="1.00", currency="eur")]),
     BadUserInput),
    (ADMIN, lambda c: service.ProductIn(name="Lamp", category_id=c,
                                        variants=[service.VariantIn(sku="A", price="1.00", currency="USD\n")]),
     BadUserInput),
    (ADMIN, lambda c: service.ProductIn(name="Lamp", category_id=c,
                                        variants=[service.VariantIn(sku="A", price="1.00", currency="EUR"),
                                                  service.VariantIn(sku="B", price="1.00", currency="USD")]),
     BadUserInput),
    (ADMIN, lambda c: service.ProductIn(name="Lamp", category_id=c, specifications="nope",
                                        variants=[service.VariantIn(sku="A", price="1.00")]), BadUserInput),
])
async def test_create_product_rejections(session, redis, db_admin, caller, make_input, error) -> None:
    category = await new_category(session, redis)
    with pytest.raises(error):
        await service.create_product(session, redis, caller=caller, product_in=make_input(category.id))
    await session.rollback()
    assert await db_admin.fetchval("SELECT count(*) FROM catalog.products") == 0


async def test_concurrent_creates_of_one_sku_leave_one_winner(service_engine: AsyncEngine, redis,
                                                               db_admin) -> None:
    factory = create_session_factory(service_engine)
    async with factory() as setup:
        category = await new_category(setup, redis)
    async with factory() as first, factory() as second:
        await service.create_product(first, redis, caller=ADMIN, product_in=product_in(category.id, "A", "RACE"))
        # `second` passes the pre-check (the first insert is uncommitted) and then waits on the unique index
        racing = asyncio.create_task(service.create_product(second, redis, caller=ADMIN,
                                                            product_in=product_in(category.id, "B", "RACE")))
        await asyncio.sleep(0.2)
        await first.commit()
        with pytest.raises(SkuTaken):
            await racing
        await second.rollback()
    assert await db_admin.fetchval("SELECT count(*) FROM catalog.product_variants WHERE sku = 'RACE'") == 1


async def test_update_merges_variants_by_sku_and_emits_the_snapshot(session, redis, db_admin) -> None:
    category = await new_category(session, redis)
    doc = await service.create_product(session, redis, caller=SELLER,
                                       product_in=product_in(category.id, "Lamp", "U-1", "U-2"))
    await session.commit()
    kept_id = doc["variants"][1]["id"]
    changes = service.ProductChanges(description="Warm light", variants=[
        service.VariantIn(sku="U-2", price="9.99"), service.VariantIn(sku="U-3", price="15.00")])
    with pytest.raises(Forbidden):
        await service.update_product(session, redis, caller=OTHER_SELLER, product_id=doc["id"], changes=changes)
    await session.rollback()
    updated = await service.update_product(session, redis, caller=SELLER, product_id=doc["id"], changes=changes)
    await session.commit()
    assert [(v["sku"], v["price"], v["position"]) for v in updated["variants"]] == [("U-2", "9.99", 0),
                                                                                   ("U-3", "15.00", 1)]
    assert updated["variants"][0]["id"] == kept_id
    assert updated["min_price"] == "9.99" and updated["description"] == "Warm light"
    assert updated["name"] == "Lamp" and updated["brand"] == "Lumen"  # untouched fields kept
    payload = orjson.loads(await db_admin.fetchval(
        "SELECT envelope FROM catalog.outbox WHERE topic = 'product.updated'"))["payload"]
    assert [v["sku"] for v in payload["variants"]] == ["U-2", "U-3"]


async def test_delete_emits_variant_ids(session, redis, db_admin) -> None:
    category = await new_category(session, redis)
    doc = await service.create_product(session, redis, caller=ADMIN,
                                       product_in=product_in(category.id, "Lamp", "D-1", "D-2"))
    await session.commit()
    assert await service.delete_product(session, redis, caller=ADMIN, product_id=doc["id"]) is True
    await session.commit()
    payload = orjson.loads(await db_admin.fetchval(
        "SELECT envelope FROM catalog.outbox WHERE topic = 'product.deleted'"))["payload"]
    assert payload == {"product_id": str(doc["id"]), "variant_ids": [str(v["id"]) for v in doc["variants"]]}


# ---- cache-aside --------------------------------------------------------------------------------------------

async def test_documents_are_read_through_redis(session, service_engine, settings, redis) -> None:
    category = await new_category(session, redis)
    a = await service.create_product(session, redis, caller=ADMIN, product_in=product_in(category.id, "A", "R-1"))
    b = await service.create_product(session, redis, caller=ADMIN, product_in=product_in(category.id, "B", "R-2"))
    await session.commit()
    await cache.invalidate(redis, [a["id"], b["id"]])  # what every writer does after committing
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])
    event.listen(service_engine.sync_engine, "before_cursor_execute", listener)

    async def sessions():
        return session

    try:
        first = await service.product_documents(sessions, redis, settings, [a["id"], b["id"], 999])
        assert len(statements) == 1  # one query for both misses
        again = await service.product_documents(sessions, redis, settings, [b["id"], a["id"]])
        assert len(statements) == 1  # all hits
    finally:
        event.remove(service_engine.sync_engine, "before_cursor_execute", listener)
    assert [d["name"] for d in first[:2]] == ["A", "B"] and first[2] is None
    assert [d["name"] for d in again] == ["B", "A"]

    await service.delete_product(session, redis, caller=ADMIN, product_id=a["id"])
    await session.commit()
    await cache.invalidate(redis, [a["id"]])
    assert await service.product_documents(sessions, redis, settings, [a["id"]]) == [None]


async def test_a_reader_cannot_store_a_document_after_a_newer_write(redis) -> None:
    """The race cache.py describes: read the generation, (writer commits and invalidates), store the old row."""
    generation, _ = await cache.mget_with_generation(redis, [cache.product_key(1)])
    generation = generation if generation is not None else await cache.generation(redis)
    await cache.invalidate(redis, [1])  # the writer, after its commit
    stored = await cache.store_if_generation(redis, generation, {cache.product_key(1): b"old"}, 60)
    assert stored is False and not await redis.exists(cache.product_key(1))

    current = await cache.generation(redis)
    assert await cache.store_if_generation(redis, current, {cache.product_key(1): b"new"}, 60) is True
    assert await redis.get(cache.product_key(1)) == b"new"
    assert 0 < await redis.ttl(cache.product_key(1)) <= 60


async def test_generation_is_reseeded_randomly_after_a_flush(redis) -> None:
    before = await cache.invalidate(redis)
    await drop_catalog_keys(redis)  # as after a flush or an eviction
    after = await cache.invalidate(redis)
    assert after > 1 and after != before + 1  # never restarts at 1, so in-process copies cannot collide
