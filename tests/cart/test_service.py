"""Cart service functions called directly (as workers and other edges would), real Redis and Postgres."""
from __future__ import annotations

from decimal import Decimal

import pytest

from kernel.auth import Principal
from kernel.internal_client import PeerClient
from subgraphs.cart import service
from subgraphs.cart.consumers import project_product_deleted
from subgraphs.cart.errors import CartFull, CartNotFound, OutOfStock, VariantNotFound
from subgraphs.catalog.events import ProductDeleted
from tests.cart.conftest import next_id


def user() -> Principal:
    return Principal(user_id=next_id(), roles=frozenset({"CUSTOMER"}))


@pytest.fixture
def small_carts(settings):
    return settings.model_copy(update={"cart_max_lines": 2})


async def test_line_cap_comes_from_settings(session, redis, small_carts, make_variant) -> None:
    a, b, c = await make_variant(), await make_variant(), await make_variant()
    caller = user()
    await service.add_to_cart(session, redis, small_carts, caller=caller, cart_id=None, variant_id=a["variant_id"],
                              quantity=1)
    await service.add_to_cart(session, redis, small_carts, caller=caller, cart_id=None, variant_id=b["variant_id"],
                              quantity=1)

    with pytest.raises(CartFull):
        await service.add_to_cart(session, redis, small_carts, caller=caller, cart_id=None,
                                  variant_id=c["variant_id"], quantity=1)

    cart = await service.get_cart(redis, caller=caller, cart_id=None)
    assert [line.variant_id for line in cart.lines] == [a["variant_id"], b["variant_id"]]


async def test_merge_drops_lines_past_the_cap_and_lines_no_longer_sold(session, redis, settings, small_carts,
                                                                      make_variant) -> None:
    # Given a user with one line, and a guest cart with a deleted variant, an out-of-stock one and two more
    mine, gone, empty, first, second = (await make_variant(), await make_variant(), await make_variant(stock=1),
                                        await make_variant(), await make_variant())
    caller = user()
    await service.add_to_cart(session, redis, small_carts, caller=caller, cart_id=None,
                              variant_id=mine["variant_id"], quantity=1)
    guest = await service.add_to_cart(session, redis, settings, caller=None, cart_id=None,
                                      variant_id=gone["variant_id"], quantity=1)
    for variant in (empty, first, second):
        await service.add_to_cart(session, redis, settings, caller=None, cart_id=guest.id,
                                  variant_id=variant["variant_id"], quantity=1)
    await project_product_deleted(redis, ProductDeleted(product_id=gone["product_id"],
                                                        variant_ids=[gone["variant_id"]]))
    await redis.set(f"cart:stock:{empty['variant_id']}", 0)

    merged = await service.merge_cart(redis, small_carts, caller=caller, guest_cart_id=guest.id)

    assert [line.variant_id for line in merged.lines] == [mine["variant_id"], first["variant_id"]]
    with pytest.raises(CartNotFound):
        await service.get_cart(redis, caller=caller, cart_id=guest.id)


async def test_out_of_stock_keeps_what_is_available(session, redis, settings, make_variant) -> None:
    shoe = await make_variant(stock=3)

    with pytest.raises(OutOfStock) as refused:
        await service.add_to_cart(session, redis, settings, caller=None, cart_id=None,
                                  variant_id=shoe["variant_id"], quantity=4)

    assert refused.value.available == 3


async def test_unknown_variant(session, redis, settings) -> None:
    with pytest.raises(VariantNotFound):
        await service.add_to_cart(session, redis, settings, caller=None, cart_id=None, variant_id=next_id(),
                                  quantity=1)


async def test_money_is_decimal_to_the_cent(session, redis, settings, make_variant) -> None:
    cheap = await make_variant(price="0.10")

    cart = await service.add_to_cart(session, redis, settings, caller=None, cart_id=None,
                                     variant_id=cheap["variant_id"], quantity=3)

    assert cart.subtotal == Decimal("0.30")  # 3 x 0.1 in binary floats would be 0.30000000000000004
    assert service.checkout_payload(cart)["subtotal"] == "0.30"


async def test_a_restock_heard_between_a_refusal_and_its_recheck_lets_the_add_retry(redis, settings,
                                                                                    make_variant) -> None:
    # A refusal saw 0 units; inventory.stock_changed (5 units) reached the projection before the refusal was
    # checked. The projection already knows more, so it is worth trying again, without asking inventory
    # (which here answers nothing: an inventory call would end in "nothing learned").
    restocked = await make_variant(stock=5)
    nobody_answers = settings.model_copy(update={"inventory_service_url": "http://127.0.0.1:9",
                                                 "catalog_service_url": "http://127.0.0.1:9"})
    http = PeerClient(1.0)
    try:
        assert await service.learn_from_owners(redis, http, nobody_answers, restocked["variant_id"],
                                               refused_at_stock=0)
        # a refusal at the figure the projection holds is not news: nothing learned without inventory's answer
        assert not await service.learn_from_owners(redis, http, nobody_answers, restocked["variant_id"],
                                                   refused_at_stock=5)
    finally:
        await http.aclose()
