"""The reviews-projections consumer, run through the kernel's IdempotentConsumer as the worker runs it: what the
domain learns from the catalog (products, sellers, deletions) and from orders (purchases that verify reviews),
in whatever order the events arrive, and that a redelivered or re-sent event changes nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kernel.events import EventEnvelope
from tests.reviews.conftest import (
    CREATE,
    MODERATE,
    PRODUCTS,
    REPLY,
    REVIEW,
    entities,
    next_id,
    order_paid,
    order_placed,
    product_event,
    review_input,
)


async def verified(api, review_id: str, token: str) -> bool:
    return (await api.ok(REVIEW, {"id": review_id}, token))["review"]["verifiedPurchase"]


async def purchases(db_admin, user_id: int) -> list[int]:
    rows = await db_admin.fetch("SELECT product_id FROM reviews.purchases WHERE user_id = $1 ORDER BY product_id",
                                user_id)
    return [r["product_id"] for r in rows]


def test_one_group_subscribed_to_exactly_the_topics_it_handles(projections) -> None:
    assert (projections.spec.name, projections.spec.schema, projections.spec.topics) == (
        "reviews-projections", "reviews",
        ("product.created", "product.updated", "product.deleted", "order.placed", "order.paid"))


async def test_a_purchase_paid_before_the_review_makes_it_verified_at_once(api, product, projections, token_for,
                                                                          db_admin) -> None:
    product_id, other_product = await product(), await product()
    ada_id, order_id = next_id(), next_id()
    assert await projections.deliver("order.placed", order_placed(order_id, ada_id, [product_id, other_product])) \
        == "applied"
    assert await purchases(db_admin, ada_id) == []  # placed is not bought
    assert await projections.deliver("order.paid", order_paid(order_id, ada_id)) == "applied"
    assert await purchases(db_admin, ada_id) == sorted([product_id, other_product])

    ada = token_for(user_id=ada_id)
    review = (await api.ok(CREATE, {"input": review_input(product_id)}, ada))["createReview"]
    assert review["verifiedPurchase"] is True
    # Someone else's review of the same product is not verified by ada's order
    bobs = (await api.ok(CREATE, {"input": review_input(product_id)}, token_for()))["createReview"]
    assert bobs["verifiedPurchase"] is False


@pytest.mark.parametrize("paid_first", [False, True], ids=["placed-then-paid", "paid-then-placed"])
async def test_a_review_written_before_the_purchase_becomes_verified_when_it_arrives(
        api, product, projections, token_for, paid_first) -> None:
    product_id = await product()
    ada_id, order_id = next_id(), next_id()
    ada = token_for(user_id=ada_id)
    review = (await api.ok(CREATE, {"input": review_input(product_id)}, ada))["createReview"]
    assert review["verifiedPurchase"] is False

    events = [("order.placed", order_placed(order_id, ada_id, [product_id])),
              ("order.paid", order_paid(order_id, ada_id))]
    if paid_first:  # two topics: order.paid may come first
        events.reverse()
    assert await projections.deliver(*events[0]) == "applied"
    assert await verified(api, review["id"], ada) is False  # only half of what it needs
    assert await projections.deliver(*events[1]) == "applied"
    assert await verified(api, review["id"], ada) is True


async def test_an_order_never_paid_verifies_nothing(api, product, projections, token_for) -> None:
    product_id = await product()
    ada_id = next_id()
    ada = token_for(user_id=ada_id)
    review = (await api.ok(CREATE, {"input": review_input(product_id)}, ada))["createReview"]
    await projections.deliver("order.placed", order_placed(next_id(), ada_id, [product_id]))
    await projections.deliver("order.paid", order_paid(next_id(), ada_id))  # another order of hers, never placed here
    assert await verified(api, review["id"], ada) is False


async def test_redelivered_and_re_sent_events_change_nothing(api, product, projections, token_for, db_admin) -> None:
    product_id = await product()
    ada_id, order_id, admin = next_id(), next_id(), token_for("ADMIN")
    ada = token_for(user_id=ada_id)
    review = (await api.ok(CREATE, {"input": review_input(product_id, rating=5)}, ada))["createReview"]
    await api.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)
    placed = EventEnvelope.new("order.placed", order_placed(order_id, ada_id, [product_id]))
    paid = EventEnvelope.new("order.paid", order_paid(order_id, ada_id))
    assert await projections.deliver("order.placed", {}, envelope=placed) == "applied"
    assert await projections.deliver("order.paid", {}, envelope=paid) == "applied"

    async def state() -> tuple:
        facts = await db_admin.fetch("SELECT order_id, user_id, product_ids, paid_at FROM reviews.order_facts")
        bought = await db_admin.fetch("SELECT user_id, product_id, order_id, purchased_at FROM reviews.purchases")
        reviews = await db_admin.fetch("SELECT id, verified_purchase, status, updated_at FROM reviews.reviews")
        summary = await db_admin.fetch("SELECT * FROM reviews.product_ratings")
        outbox = await db_admin.fetchval("SELECT count(*) FROM reviews.outbox")
        return ([tuple(r) for r in facts], [tuple(r) for r in bought], [tuple(r) for r in reviews],
                [tuple(r) for r in summary], outbox)

    before = await state()
    assert before[1] and before[2][0][1] is True  # bought, and the review verified
    # The same envelopes again (a redelivery after a lost offset commit): the inbox drops them
    assert await projections.deliver("order.placed", {}, envelope=placed) == "duplicate"
    assert await projections.deliver("order.paid", {}, envelope=paid) == "duplicate"
    # The same facts in new envelopes (orders' saga watchdog re-sends order.placed): applied, and nothing moves
    assert await projections.deliver("order.placed", placed.payload) == "applied"
    assert await projections.deliver("order.paid", paid.payload) == "applied"
    assert await state() == before
    assert (await api.ok(PRODUCTS, {"r": entities(product_id)}))["_entities"][0]["rating"]["count"] == 1
    assert projections.dead_letters == []


async def test_the_catalog_tells_which_products_exist_and_who_sells_them(api, projections, token_for) -> None:
    product_id, seller_id, new_seller_id = next_id(), next_id(), next_id()
    ada, admin = token_for(), token_for("ADMIN")
    assert await api.error_code(CREATE, {"input": review_input(product_id)}, ada) == "NOT_FOUND"

    now = datetime.now(UTC)
    await projections.deliver("product.created", product_event(product_id, seller_id, updated_at=now))
    review = (await api.ok(CREATE, {"input": review_input(product_id)}, ada))["createReview"]
    await api.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)

    # A newer snapshot moves the product to another seller; an older one, arriving late, does not move it back
    await projections.deliver("product.updated", product_event(product_id, new_seller_id,
                                                               updated_at=now + timedelta(seconds=5)))
    await projections.deliver("product.updated", product_event(product_id, seller_id,
                                                               updated_at=now + timedelta(seconds=1)))
    old_seller, new_seller = token_for("SELLER", user_id=seller_id), token_for("SELLER", user_id=new_seller_id)
    assert await api.error_code(REPLY, {"id": review["id"], "body": "Thanks"}, old_seller) == "FORBIDDEN"
    assert (await api.ok(REPLY, {"id": review["id"], "body": "Thanks"}, new_seller))["replyToReview"]["reply"]

    # Deleted: no new reviews, for good (a later snapshot does not bring it back)
    await projections.deliver("product.deleted", {"product_id": str(product_id), "variant_ids": []})
    await projections.deliver("product.updated", product_event(product_id, seller_id,
                                                               updated_at=now + timedelta(seconds=9)))
    assert await api.error_code(CREATE, {"input": review_input(product_id)}, token_for()) == "NOT_FOUND"
    assert projections.dead_letters == []
