"""The cart-projections consumer: product and stock projections, and order.placed emptying the cart.

The handler is called as the worker calls it (inside an inbox transaction); Kafka delivery and the inbox
itself are the kernel's (tests/kernel)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kernel.consumer import WorkerResources
from kernel.db import create_session_factory
from kernel.events import EventEnvelope
from subgraphs.cart.consumers import consumer_specs
from tests.cart.conftest import ADD, CART, next_id, order_placed, product_payload
from tests.cart.test_schema import add, read


@pytest.fixture
def deliver(settings, service_engine, redis):
    """Run one event through the cart-projections handler, in a committed transaction like the worker's."""
    (spec,) = consumer_specs(WorkerResources(settings=settings, session_factory=create_session_factory(service_engine),
                                             redis=redis))

    async def run(event_type: str, payload: dict) -> EventEnvelope:
        envelope = EventEnvelope.new(event_type, payload)
        async with create_session_factory(service_engine)() as session, session.begin():
            await spec.handler(session, envelope)
        return envelope

    return run


def test_one_consumer_spec_with_the_contracted_group_schema_and_topics(settings, redis) -> None:
    resources = WorkerResources(settings=settings, session_factory=None,  # type: ignore[arg-type]  # no Postgres here
                                redis=redis)
    specs = consumer_specs(resources)

    assert [(s.name, s.schema, s.topics) for s in specs] == [("cart-projections", "cart", (
        "product.created", "product.updated", "product.deleted", "inventory.stock_changed", "order.placed"))]


async def test_product_created_and_stock_changed_make_a_variant_addable(cart_api, deliver) -> None:
    product_id, variant_id = next_id(), next_id()
    await deliver("product.created", product_payload(product_id, [(variant_id, "RUN-1", "49.90")], name="Runner"))
    assert await cart_api.error_code(ADD, {"variantId": str(variant_id), "quantity": 1}) == "OUT_OF_STOCK"

    await deliver("inventory.stock_changed", {"variant_id": str(variant_id), "on_hand": 5, "reserved": 1,
                                              "available": 4, "in_stock": True})
    cart = await add(cart_api, variant_id, 4)

    assert cart["items"][0]["name"] == "Runner" and cart["items"][0]["sku"] == "RUN-1"
    assert cart["subtotal"]["amount"] == "199.60"


async def test_product_updated_price_changes_the_carts_unit_price(cart_api, make_variant, deliver) -> None:
    shoe = await make_variant(price="19.99")
    cart = await add(cart_api, shoe["variant_id"], 2)

    await deliver("product.updated", product_payload(shoe["product_id"], [(shoe["variant_id"], shoe["sku"], "24.50")],
                                                     name="Trail Shoe v2"))

    item = (await read(cart_api, cart["id"]))["items"][0]
    assert item["unitPrice"]["amount"] == "24.50" and item["lineTotal"]["amount"] == "49.00"
    assert item["name"] == "Trail Shoe v2"


async def test_a_variant_missing_from_an_update_is_gone(cart_api, make_variant, deliver) -> None:
    shoe = await make_variant()
    cart = await add(cart_api, shoe["variant_id"], 1)
    kept = next_id()

    await deliver("product.updated", product_payload(shoe["product_id"], [(kept, "NEW-SKU", "9.00")]))

    item = (await read(cart_api, cart["id"]))["items"][0]
    assert item["available"] is False
    assert (await read(cart_api, cart["id"]))["subtotal"]["amount"] == "0.00"
    assert await cart_api.error_code(ADD, {"variantId": str(shoe["variant_id"]), "quantity": 1}) == "NOT_FOUND"


async def test_an_older_snapshot_does_not_overwrite_a_newer_one(cart_api, make_variant, deliver) -> None:
    shoe = await make_variant()
    now = datetime.now(UTC) + timedelta(minutes=1)
    newer = product_payload(shoe["product_id"], [(shoe["variant_id"], shoe["sku"], "30.00")], updated_at=now)
    older = product_payload(shoe["product_id"], [(shoe["variant_id"], shoe["sku"], "10.00")],
                            updated_at=now - timedelta(seconds=1))

    await deliver("product.updated", newer)
    await deliver("product.updated", older)
    await deliver("product.updated", newer)  # a redelivery changes nothing

    cart = await add(cart_api, shoe["variant_id"], 1)
    assert cart["items"][0]["unitPrice"]["amount"] == "30.00"


async def test_product_deleted_makes_its_variants_not_found_for_good(cart_api, make_variant, deliver) -> None:
    shoe = await make_variant()
    cart = await add(cart_api, shoe["variant_id"], 1)

    await deliver("product.deleted", {"product_id": str(shoe["product_id"]), "variant_ids": [str(shoe["variant_id"])]})
    await deliver("product.updated", product_payload(shoe["product_id"], [(shoe["variant_id"], shoe["sku"], "1.00")]))

    assert await cart_api.error_code(ADD, {"variantId": str(shoe["variant_id"]), "quantity": 1}) == "NOT_FOUND"
    assert (await read(cart_api, cart["id"]))["items"][0]["available"] is False


async def test_order_placed_takes_the_ordered_quantities_out_of_the_cart_once(cart_api, make_variant, deliver,
                                                                             token_for) -> None:
    shoe, sock, hat = await make_variant(), await make_variant(), await make_variant()
    token = token_for(next_id())
    await add(cart_api, shoe["variant_id"], 3, token=token)
    await add(cart_api, sock["variant_id"], 2, token=token)
    cart = await add(cart_api, hat["variant_id"], 1, token=token)
    placed = order_placed(cart["id"], [(shoe["variant_id"], 2), (sock["variant_id"], 2)])

    await deliver("order.placed", placed)
    await deliver("order.placed", placed)  # redelivered (inbox commit lost): applied once

    after = await read(cart_api, cart["id"], token)
    assert {i["id"]: i["quantity"] for i in after["items"]} == {str(shoe["variant_id"]): 1, str(hat["variant_id"]): 1}


async def test_order_placed_for_an_unknown_cart_changes_nothing(cart_api, deliver) -> None:
    await deliver("order.placed", order_placed("y" * 22, []))
    await deliver("order.placed", order_placed(None, []))

    assert await cart_api.error_code(CART, {"cartId": "y" * 22}) == "NOT_FOUND"
