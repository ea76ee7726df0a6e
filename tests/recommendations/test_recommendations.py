"""Recommendations in process, against real Postgres and Redis: tracking changes the next answer at once,
what may never be shown is never shown, events feed the projection and the training data exactly once, and bad
input changes nothing."""
from __future__ import annotations

import orjson

from tests.event_driver import EventDriver
from tests.recommendations.conftest import (
    FOR_YOU,
    PRODUCT_LISTS,
    TRACK,
    ids,
    next_id,
    order_paid,
    stock_changed,
)

SHOES, HATS = 11, 22


async def outbox_payloads(db_admin, topic: str) -> list[dict]:
    rows = await db_admin.fetch("SELECT envelope FROM recommendations.outbox WHERE topic = $1 ORDER BY id", topic)
    return [orjson.loads(r["envelope"]) for r in rows]


async def test_a_viewed_category_leads_the_next_answer_at_once(api, listed, token_for) -> None:
    shoes = [await listed(SHOES) for _ in range(4)]
    hats = [await listed(HATS) for _ in range(4)]
    await api.refresh()
    token = token_for()

    await api.client.ok(TRACK, {"input": {"productId": str(hats[0].product_id), "kind": "VIEW"}}, token)
    after_hat = ids(await api.client.ok(FOR_YOU, {"first": 3}, token))
    assert set(after_hat) <= {h.product_id for h in hats[1:]}, "the viewed category first"
    assert hats[0].product_id not in after_hat, "what was just viewed is not in the top while others fill it"

    await api.client.ok(TRACK, {"input": {"productId": str(shoes[0].product_id), "kind": "CLICK"}}, token)
    after_shoe = ids(await api.client.ok(FOR_YOU, {"first": 3}, token))
    assert set(after_shoe) <= {s.product_id for s in shoes[1:]}, "the newest view's category leads"
    everything = ids(await api.client.ok(FOR_YOU, {"first": 8}, token))
    assert everything[-2:] == [hats[0].product_id, shoes[0].product_id] or \
        set(everything[-2:]) == {hats[0].product_id, shoes[0].product_id}, "viewed items only at the end"


async def test_a_guest_session_is_tracked_and_linked_when_signing_in(api, listed, token_for, db_admin) -> None:
    hats = [await listed(HATS) for _ in range(3)]
    shoes = [await listed(SHOES) for _ in range(3)]
    await api.refresh()
    session_id = "guest-1a2b"
    await api.client.ok(TRACK, {"input": {"productId": str(hats[0].product_id), "kind": "VIEW",
                                          "sessionId": session_id, "source": "home"}})
    guest = ids(await api.client.ok(FOR_YOU, {"first": 2, "s": session_id}))
    assert set(guest) <= {h.product_id for h in hats}

    # Anonymous without a session: the most popular products (here: any in-stock one), never an error
    anonymous = ids(await api.client.ok(FOR_YOU, {"first": 6}))
    assert set(anonymous) == {p.product_id for p in hats + shoes}

    # Signing in with that session: its views count as the user's at once, and the session is linked
    user_id = next_id()
    token = token_for(user_id=user_id)
    signed_in = ids(await api.client.ok(FOR_YOU, {"first": 2, "s": session_id}, token))
    assert set(signed_in) <= {h.product_id for h in hats}
    await api.client.ok(TRACK, {"input": {"productId": str(hats[1].product_id), "kind": "WISHLIST",
                                          "sessionId": session_id}}, token)
    assert await db_admin.fetchval("SELECT user_id FROM recommendations.session_links WHERE session_id = $1",
                                   session_id) == user_id
    (first, second) = await outbox_payloads(db_admin, "interaction.recorded")
    assert (first["payload"]["subject"], first["payload"]["user_id"]) == (f"session:{session_id}", None)
    assert (second["payload"]["subject"], second["payload"]["user_id"]) == (f"user:{user_id}", str(user_id))


async def test_bad_input_is_refused_with_nothing_recorded(api, listed, projections: EventDriver, token_for,
                                                          db_admin, redis) -> None:
    product = await listed(SHOES)
    gone = await listed(SHOES)
    assert await projections.deliver("product.deleted", {"product_id": str(gone.product_id),
                                                         "variant_ids": [str(gone.variant_id)]}) == "applied"
    token = token_for()

    def track(product_id: int | str, **extra: str) -> dict:
        return {"input": {"productId": str(product_id), "kind": "VIEW", **extra}}

    assert await api.client.error_code(FOR_YOU, {"first": 0}, token) == "BAD_USER_INPUT"
    assert await api.client.error_code(FOR_YOU, {"first": 51}, token) == "BAD_USER_INPUT"
    assert await api.client.error_code(PRODUCT_LISTS, {"r": [{"__typename": "Product", "id": str(
        product.product_id)}], "first": 51}) == "BAD_USER_INPUT"
    assert await api.client.error_code(TRACK, track(next_id()), token) == "NOT_FOUND"
    assert await api.client.error_code(TRACK, track(gone.product_id), token) == "NOT_FOUND"
    assert await api.client.error_code(TRACK, track("not-an-id"), token) == "BAD_USER_INPUT"
    assert await api.client.error_code(TRACK, track(product.product_id)) == "UNAUTHENTICATED"
    assert await api.client.error_code(TRACK, track(product.product_id, sessionId="x" * 65)) == "BAD_USER_INPUT"
    assert await api.client.error_code(TRACK, track(product.product_id, sessionId="a b")) == "BAD_USER_INPUT"
    assert await api.client.error_code(TRACK, track(product.product_id, sessionId="s1",
                                                    source="\x07bell")) == "BAD_USER_INPUT"
    assert await api.client.error_code(TRACK, {"input": {"productId": str(product.product_id),
                                                         "kind": "PURCHASE"}}, token) == "BAD_USER_INPUT"
    assert await outbox_payloads(db_admin, "interaction.recorded") == []
    assert await redis.keys("recs:recent:*") == []

    # The limit (30 a minute in these tests): the 31st is refused and records nothing
    busy = token_for()
    for _ in range(30):
        await api.client.ok(TRACK, track(product.product_id), busy)
    recorded = len(await outbox_payloads(db_admin, "interaction.recorded"))
    assert await api.client.error_code(TRACK, track(product.product_id), busy) == "RATE_LIMITED"
    assert len(await outbox_payloads(db_admin, "interaction.recorded")) == recorded


async def test_out_of_stock_deleted_and_bought_products_are_never_shown(api, listed, projections: EventDriver,
                                                                         token_for, db_admin) -> None:
    hats = [await listed(HATS) for _ in range(4)]
    never_stocked = await listed(HATS, in_stock=False)
    await api.refresh()
    user_id = next_id()
    token = token_for(user_id=user_id)
    await api.client.ok(TRACK, {"input": {"productId": str(hats[0].product_id), "kind": "VIEW"}}, token)
    shown = ids(await api.client.ok(FOR_YOU, {"first": 10}, token))
    assert set(shown) == {h.product_id for h in hats} and never_stocked.product_id not in shown

    sold_out, deleted, bought = hats[1], hats[2], hats[3]
    assert await projections.deliver("inventory.stock_changed", stock_changed(sold_out.variant_id, 0)) == "applied"
    assert await projections.deliver("product.deleted", {"product_id": str(deleted.product_id),
                                                         "variant_ids": [str(deleted.variant_id)]}) == "applied"
    paid = order_paid(next_id(), user_id, [bought.variant_id])
    assert await projections.deliver("order.paid", paid) == "applied"
    assert ids(await api.client.ok(FOR_YOU, {"first": 10}, token)) == [hats[0].product_id]
    # Another shopper still gets what this one bought
    assert bought.product_id in ids(await api.client.ok(FOR_YOU, {"first": 10}, token_for()))
    # ...and neither gets it in a product's lists
    lists = (await api.client.ok(PRODUCT_LISTS, {"r": [{"__typename": "Product", "id": str(hats[0].product_id)}],
                                                 "first": 10}))["_entities"][0]
    assert {int(p["id"]) for p in lists["similarProducts"]} == {bought.product_id}

    # One PURCHASE row per product, however often order.paid arrives
    assert await projections.deliver("order.paid", paid) == "applied"  # re-sent: a new envelope, same order
    rows = await db_admin.fetch("SELECT subject, product_id, kind FROM recommendations.interactions")
    assert [tuple(r) for r in rows] == [(f"user:{user_id}", bought.product_id, "PURCHASE")]


async def test_interactions_are_stored_once_for_training(api, listed, projections: EventDriver, token_for,
                                                         db_admin) -> None:
    product = await listed(SHOES)
    user_id = next_id()
    await api.client.ok(TRACK, {"input": {"productId": str(product.product_id), "kind": "ADD_TO_CART",
                                          "source": "search"}}, token_for(user_id=user_id))
    (envelope,) = await outbox_payloads(db_admin, "interaction.recorded")
    from kernel.events import EventEnvelope
    as_sent = EventEnvelope(**envelope)
    assert await projections.deliver("interaction.recorded", as_sent.payload, envelope=as_sent) == "applied"
    assert await projections.deliver("interaction.recorded", as_sent.payload, envelope=as_sent) == "duplicate"
    # The same interaction re-sent in a new envelope (the outbox republishing): still one row
    assert await projections.deliver("interaction.recorded", as_sent.payload) == "applied"
    rows = await db_admin.fetch("SELECT subject, user_id, product_id, kind, source FROM recommendations.interactions")
    assert [tuple(r) for r in rows] == [(f"user:{user_id}", user_id, product.product_id, "ADD_TO_CART", "search")]


async def test_a_new_product_has_similar_products_from_its_category(api, listed) -> None:
    shoes = [await listed(SHOES) for _ in range(3)]
    hat = await listed(HATS)
    await api.refresh()
    lists = (await api.client.ok(PRODUCT_LISTS, {"r": [{"__typename": "Product", "id": str(shoes[0].product_id)}],
                                                 "first": 5}))["_entities"][0]
    expected = {s.product_id for s in shoes[1:]}
    assert {int(p["id"]) for p in lists["similarProducts"]} == expected
    assert {int(p["id"]) for p in lists["frequentlyBoughtTogether"]} == expected
    assert hat.product_id not in {int(p["id"]) for p in lists["similarProducts"]}
