"""The reviews subgraph in process, against the session's Postgres and Redis: who may write, see, change, vote on
and answer a review; the public rating after every kind of change; input limits; pages and sorts; and the batch
resolution of Product.rating / Product.reviews for a page of products."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from sqlalchemy import event

import kernel.redis
from tests.event_contracts import as_consumed
from tests.reviews.conftest import (
    CREATE,
    DELETE,
    MODERATE,
    PRODUCTS,
    REPLY,
    REVIEW,
    UPDATE,
    VOTE,
    entities,
    next_id,
    review_input,
    reviews_client,
)


async def write(api, token: str, product_id: int, **overrides) -> dict:
    return (await api.ok(CREATE, {"input": review_input(product_id, **overrides)}, token))["createReview"]


async def approve(api, admin: str, review_id: str) -> dict:
    return (await api.ok(MODERATE, {"id": review_id, "d": "APPROVE"}, admin))["moderateReview"]


async def product_view(api, product_id: int, token: str | None = None, **arguments) -> dict:
    return (await api.ok(PRODUCTS, {"r": entities(product_id), **arguments}, token))["_entities"][0]


async def rating(api, product_id: int) -> dict:
    return (await product_view(api, product_id))["rating"]


def titles(view: dict) -> list[str]:
    return [e["node"]["title"] for e in view["reviews"]["edges"]]


async def stored_reviews(db_admin) -> int:
    return await db_admin.fetchval("SELECT count(*) FROM reviews.reviews")


async def test_a_pending_review_is_its_authors_alone_until_an_admin_approves_it(api, product, token_for) -> None:
    product_id = await product()
    ada_id = next_id()
    ada, bob, admin = token_for(user_id=ada_id), token_for(), token_for("ADMIN")

    review = await write(api, ada, product_id, title="Great <b>grip</b>", rating=4)
    assert (review["status"], review["verifiedPurchase"], review["helpfulCount"]) == ("PENDING", False, 0)
    assert review["author"] == {"id": str(ada_id)} and review["product"] == {"id": str(product_id)}
    assert review["title"] == "Great <b>grip</b>"  # HTML is stored as written

    # Nobody else sees it, and it does not count
    for token in (None, bob):
        view = await product_view(api, product_id, token)
        assert view["reviews"]["edges"] == [] and view["reviews"]["totalCount"] == 0
        assert (await api.ok(REVIEW, {"id": review["id"]}, token))["review"] is None
    assert await rating(api, product_id) == {"average": None, "count": 0, "histogram": [0, 0, 0, 0, 0]}
    # ...but its author does
    mine = await product_view(api, product_id, ada)
    assert [(e["node"]["id"], e["node"]["status"]) for e in mine["reviews"]["edges"]] == [(review["id"], "PENDING")]
    assert (await api.ok(REVIEW, {"id": review["id"]}, ada))["review"]["status"] == "PENDING"

    # Only an ADMIN moderates
    assert await api.error_code(MODERATE, {"id": review["id"], "d": "APPROVE"}, ada) == "FORBIDDEN"
    assert (await approve(api, admin, review["id"]))["status"] == "APPROVED"

    view = await product_view(api, product_id)
    assert titles(view) == ["Great <b>grip</b>"] and view["reviews"]["totalCount"] == 1
    assert view["rating"] == {"average": 4.0, "count": 1, "histogram": [0, 0, 0, 1, 0]}


async def test_the_rating_follows_every_approval_edit_rejection_and_deletion(api, product, token_for,
                                                                            db_admin) -> None:
    product_id = await product()
    admin = token_for("ADMIN")
    ada, bob, cy = token_for(), token_for(), token_for()
    five = await write(api, ada, product_id, rating=5)
    three = await write(api, bob, product_id, rating=3)
    four = await write(api, cy, product_id, rating=4)
    for review in (five, three, four):
        await approve(api, admin, review["id"])
    assert await rating(api, product_id) == {"average": 4.0, "count": 3, "histogram": [0, 0, 1, 1, 1]}

    # An edit of an approved review takes it out of the rating until it is approved again
    edited = (await api.ok(UPDATE, {"id": five["id"], "input": {"rating": 1, "body": "Sole came off."}},
                           ada))["updateReview"]
    assert (edited["status"], edited["rating"], edited["title"]) == ("PENDING", 1, "Comfortable")
    assert await rating(api, product_id) == {"average": 3.5, "count": 2, "histogram": [0, 0, 1, 1, 0]}
    assert five["id"] not in [e["node"]["id"] for e in (await product_view(api, product_id))["reviews"]["edges"]]
    await approve(api, admin, five["id"])
    assert await rating(api, product_id) == {"average": 2.67, "count": 3, "histogram": [1, 0, 1, 1, 0]}

    # A rejection (of an approved review: a takedown) and deletions, by the author and by an ADMIN
    assert (await api.ok(MODERATE, {"id": three["id"], "d": "REJECT"}, admin))["moderateReview"]["status"] == \
        "REJECTED"
    assert await rating(api, product_id) == {"average": 2.5, "count": 2, "histogram": [1, 0, 0, 1, 0]}
    assert (await api.ok(DELETE, {"id": four["id"]}, cy))["deleteReview"] is True
    assert await rating(api, product_id) == {"average": 1.0, "count": 1, "histogram": [1, 0, 0, 0, 0]}
    assert (await api.ok(DELETE, {"id": five["id"]}, admin))["deleteReview"] is True
    assert await rating(api, product_id) == {"average": None, "count": 0, "histogram": [0, 0, 0, 0, 0]}

    # The summary row is what a recount of the approved reviews gives
    recount = await db_admin.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(rating), 0) AS total FROM reviews.reviews "
        "WHERE product_id = $1 AND status = 'APPROVED'", product_id)
    summary = await db_admin.fetchrow("SELECT count, rating_sum FROM reviews.product_ratings WHERE product_id = $1",
                                      product_id)
    assert (summary["count"], summary["rating_sum"]) == (recount["n"], recount["total"]) == (0, 0)


async def test_a_rejected_review_edited_goes_back_to_moderation(api, product, token_for) -> None:
    product_id = await product()
    ada, admin = token_for(), token_for("ADMIN")
    review = await write(api, ada, product_id)
    await api.ok(MODERATE, {"id": review["id"], "d": "REJECT"}, admin)
    assert (await api.ok(REVIEW, {"id": review["id"]}, ada))["review"]["status"] == "REJECTED"
    edited = (await api.ok(UPDATE, {"id": review["id"], "input": {"title": "Fair, on second thought"}},
                           ada))["updateReview"]
    assert edited["status"] == "PENDING"
    # The same decision twice changes nothing
    await approve(api, admin, review["id"])
    again = await approve(api, admin, review["id"])
    assert again["status"] == "APPROVED" and (await rating(api, product_id))["count"] == 1


async def test_one_review_per_user_and_product(api, product, token_for, db_admin) -> None:
    product_id, other_product = await product(), await product()
    ada = token_for()
    first = await write(api, ada, product_id)

    body = await api.raw(CREATE, {"input": review_input(product_id, title="Again")}, ada)
    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "field": "productId"}
    assert body["data"] is None
    assert await stored_reviews(db_admin) == 1

    await write(api, ada, other_product)  # another product: fine
    # Once deleted, the author may write a new one
    await api.ok(DELETE, {"id": first["id"]}, ada)
    assert (await write(api, ada, product_id, title="Again"))["title"] == "Again"


async def test_only_the_author_edits_and_only_the_author_or_an_admin_deletes(api, product, token_for) -> None:
    product_id = await product()
    ada, bob, admin = token_for(), token_for(), token_for("ADMIN")
    review = await write(api, ada, product_id)

    # A pending review is invisible to bob: as if it did not exist
    assert await api.error_code(UPDATE, {"id": review["id"], "input": {"rating": 1}}, bob) == "NOT_FOUND"
    await approve(api, admin, review["id"])
    # An approved one he can see but not change
    assert await api.error_code(UPDATE, {"id": review["id"], "input": {"rating": 1}}, bob) == "FORBIDDEN"
    assert await api.error_code(DELETE, {"id": review["id"]}, bob) == "FORBIDDEN"
    assert await api.error_code(UPDATE, {"id": review["id"], "input": {"rating": 1}}, admin) == "FORBIDDEN"
    unchanged = (await api.ok(REVIEW, {"id": review["id"]}))["review"]
    assert (unchanged["rating"], unchanged["status"]) == (4, "APPROVED")
    assert await rating(api, product_id) == {"average": 4.0, "count": 1, "histogram": [0, 0, 0, 1, 0]}

    # Signed-out callers are told to sign in
    for query, variables in ((CREATE, {"input": review_input(product_id)}),
                             (UPDATE, {"id": review["id"], "input": {"rating": 2}}), (DELETE, {"id": review["id"]}),
                             (VOTE, {"id": review["id"], "h": True}), (REPLY, {"id": review["id"], "body": "Hi"}),
                             (MODERATE, {"id": review["id"], "d": "REJECT"})):
        assert await api.error_code(query, variables) == "UNAUTHENTICATED"

    assert (await api.ok(DELETE, {"id": review["id"]}, admin))["deleteReview"] is True
    assert await api.error_code(DELETE, {"id": review["id"]}, ada) == "NOT_FOUND"
    assert await rating(api, product_id) == {"average": None, "count": 0, "histogram": [0, 0, 0, 0, 0]}


async def test_an_unknown_product_is_not_found(api, token_for, db_admin) -> None:
    body = await api.raw(CREATE, {"input": review_input(next_id())}, token_for())
    assert body["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "productId"}
    assert body["errors"][0]["message"] == "No such product"
    assert await stored_reviews(db_admin) == 0


async def test_a_seller_cannot_review_their_own_product(api, product, token_for) -> None:
    seller_id = next_id()
    product_id = await product(seller_id)
    seller = token_for("SELLER", user_id=seller_id)
    assert await api.error_code(CREATE, {"input": review_input(product_id)}, seller) == "FORBIDDEN"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"rating": 0}, "rating"), ({"rating": 6}, "rating"), ({"rating": -3}, "rating"),
    ({"title": ""}, "title"), ({"title": "   "}, "title"), ({"title": "x" * 121}, "title"),
    ({"title": "two\nlines"}, "title"), ({"title": "bell\x07"}, "title"), ({"title": "esc\x1b[31m"}, "title"),
    ({"title": "c1\u0085"}, "title"), ({"body": "y" * 5001}, "body"), ({"body": "esc\x1b[2J"}, "body"),
    ({"body": "del\x7f"}, "body"), ({"productId": "not-an-id"}, "productId"),
])
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(api, product, token_for, db_admin,
                                                                           overrides, field) -> None:
    product_id = await product()
    body = await api.raw(CREATE, {"input": review_input(product_id, **overrides)}, token_for())
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert await stored_reviews(db_admin) == 0


async def test_text_postgres_cannot_store_is_refused_before_anything_runs(api, product, token_for, db_admin) -> None:
    product_id = await product()
    code = await api.error_code(CREATE, {"input": review_input(product_id, body="nul\x00")}, token_for())
    assert code == "BAD_USER_INPUT" and await stored_reviews(db_admin) == 0


async def test_limits_are_inclusive_and_text_is_kept_as_written(api, product, token_for) -> None:
    product_id = await product()
    body = "Line one\n\tindented <script>alert(1)</script>\r\n" + "z" * 4950
    review = await write(api, token_for(), product_id, title="t" * 120, body=f"  {body}  ")
    assert review["title"] == "t" * 120
    assert review["body"] == body  # trimmed around, HTML and line breaks kept
    assert len((await write(api, token_for(), product_id, title="Short", body="b" * 5000))["body"]) == 5000
    assert (await write(api, token_for(), product_id, title="No body", body=""))["body"] == ""


async def test_an_edit_must_change_something_valid(api, product, token_for) -> None:
    product_id = await product()
    ada = token_for()
    review = await write(api, ada, product_id)
    assert await api.error_code(UPDATE, {"id": review["id"], "input": {}}, ada) == "BAD_USER_INPUT"
    body = await api.raw(UPDATE, {"id": review["id"], "input": {"title": "tab\tinside"}}, ada)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "title"}
    body = await api.raw(UPDATE, {"id": review["id"], "input": {"rating": 9}}, ada)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "rating"}
    assert (await api.ok(REVIEW, {"id": review["id"]}, ada))["review"]["rating"] == 4


async def test_helpful_votes_toggle_once_per_user_and_never_on_your_own_review(api, product, token_for) -> None:
    product_id = await product()
    ada, bob, cy, admin = token_for(), token_for(), token_for(), token_for("ADMIN")
    review = await write(api, ada, product_id)

    # Not published yet: others cannot see it, so cannot vote on it (an ADMIN sees it, but it takes no votes)
    assert await api.error_code(VOTE, {"id": review["id"], "h": True}, bob) == "NOT_FOUND"
    assert await api.error_code(VOTE, {"id": review["id"], "h": True}, admin) == "CONFLICT"
    await approve(api, admin, review["id"])

    assert await api.error_code(VOTE, {"id": review["id"], "h": True}, ada) == "FORBIDDEN"
    assert (await api.ok(VOTE, {"id": review["id"], "h": True}, bob))["voteReviewHelpful"]["helpfulCount"] == 1
    assert (await api.ok(VOTE, {"id": review["id"], "h": True}, bob))["voteReviewHelpful"]["helpfulCount"] == 1
    assert (await api.ok(VOTE, {"id": review["id"], "h": True}, cy))["voteReviewHelpful"]["helpfulCount"] == 2
    assert (await api.ok(VOTE, {"id": review["id"], "h": False}, bob))["voteReviewHelpful"]["helpfulCount"] == 1
    assert (await api.ok(VOTE, {"id": review["id"], "h": False}, bob))["voteReviewHelpful"]["helpfulCount"] == 1
    assert (await api.ok(REVIEW, {"id": review["id"]}))["review"]["helpfulCount"] == 1


async def test_concurrent_requests_keep_one_review_per_user_and_an_exact_vote_count(api, product, token_for,
                                                                                    db_admin) -> None:
    product_id = await product()
    ada, admin = token_for(), token_for("ADMIN")
    answers = await asyncio.gather(*(api.raw(CREATE, {"input": review_input(product_id, title=f"Try {n}")}, ada)
                                     for n in range(6)))
    created = [a["data"]["createReview"] for a in answers if not a.get("errors")]
    assert len(created) == 1 and await stored_reviews(db_admin) == 1
    assert {a["errors"][0]["extensions"]["code"] for a in answers if a.get("errors")} == {"CONFLICT"}

    await approve(api, admin, created[0]["id"])
    voters = [token_for() for _ in range(12)]
    await asyncio.gather(*(api.ok(VOTE, {"id": created[0]["id"], "h": True}, v) for v in voters for _ in range(2)))
    await asyncio.gather(*(api.ok(VOTE, {"id": created[0]["id"], "h": False}, v) for v in voters[:5]))
    assert (await api.ok(REVIEW, {"id": created[0]["id"]}))["review"]["helpfulCount"] == 7
    assert await db_admin.fetchval("SELECT count(*) FROM reviews.review_votes") == 7


async def test_the_products_seller_replies_once(api, product, token_for) -> None:
    seller_id = next_id()
    product_id = await product(seller_id)
    seller, ada, bob, admin = token_for("SELLER", user_id=seller_id), token_for(), token_for(), token_for("ADMIN")
    review = await write(api, ada, product_id)

    assert await api.error_code(REPLY, {"id": review["id"], "body": "Thanks!"}, seller) == "NOT_FOUND"  # pending
    await approve(api, admin, review["id"])
    for other in (bob, ada, admin):
        assert await api.error_code(REPLY, {"id": review["id"], "body": "Thanks!"}, other) == "FORBIDDEN"
    assert await api.error_code(REPLY, {"id": review["id"], "body": "  "}, seller) == "BAD_USER_INPUT"

    replied = (await api.ok(REPLY, {"id": review["id"], "body": "Thanks, <i>Ada</i>!"}, seller))["replyToReview"]
    assert replied["reply"]["body"] == "Thanks, <i>Ada</i>!" and replied["reply"]["createdAt"]
    body = await api.raw(REPLY, {"id": review["id"], "body": "Edited thanks"}, seller)
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert (await api.ok(REVIEW, {"id": review["id"]}))["review"]["reply"]["body"] == "Thanks, <i>Ada</i>!"


async def test_writes_beyond_the_per_user_limit_are_rate_limited(settings, product, token_for, monkeypatch) -> None:
    # One fixed minute: a window that rolled over mid-test would start counting again
    monkeypatch.setattr(kernel.redis, "time", SimpleNamespace(time=lambda: 1_800_000_000.0))
    product_id = await product()
    ada, bob = token_for(), token_for()
    async with reviews_client(settings, reviews_writes_per_minute=3) as limited:
        review = (await limited.ok(CREATE, {"input": review_input(product_id)}, ada))["createReview"]
        await limited.ok(UPDATE, {"id": review["id"], "input": {"rating": 5}}, ada)
        await limited.ok(UPDATE, {"id": review["id"], "input": {"rating": 3}}, ada)
        body = await limited.raw(UPDATE, {"id": review["id"], "input": {"rating": 1}}, ada)
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert (await limited.ok(REVIEW, {"id": review["id"]}, ada))["review"]["rating"] == 3  # nothing changed
        # Counted per user
        assert (await limited.ok(CREATE, {"input": review_input(product_id)}, bob))["createReview"]["rating"] == 4


async def review_approved_events(db_admin) -> list[dict]:
    rows = await db_admin.fetch("SELECT topic, key, convert_from(envelope, 'UTF8')::jsonb -> 'payload' AS payload "
                                "FROM reviews.outbox ORDER BY id")
    return [{"topic": r["topic"], "key": r["key"], "payload": as_consumed(r["topic"], json.loads(r["payload"]))}
            for r in rows]


async def test_becoming_approved_emits_review_approved_once(api, product, token_for, db_admin) -> None:
    seller_id, ada_id, admin_id = next_id(), next_id(), next_id()
    product_id = await product(seller_id)
    ada, admin = token_for(user_id=ada_id), token_for("ADMIN", user_id=admin_id)
    review = await write(api, ada, product_id, rating=5, title="Superb")
    assert await review_approved_events(db_admin) == []

    await approve(api, admin, review["id"])
    await approve(api, admin, review["id"])  # already approved: nothing new
    (published,) = await review_approved_events(db_admin)
    assert published["topic"] == "review.approved" and published["key"] == review["id"]
    payload = published["payload"]
    assert {k: payload[k] for k in ("review_id", "product_id", "author_id", "seller_id", "rating", "title",
                                    "verified_purchase", "approved_by")} == {
        "review_id": review["id"], "product_id": str(product_id), "author_id": str(ada_id),
        "seller_id": str(seller_id), "rating": 5, "title": "Superb", "verified_purchase": False,
        "approved_by": str(admin_id)}

    # Edited (pending again) and approved again: a second event
    await api.ok(UPDATE, {"id": review["id"], "input": {"body": "Still superb."}}, ada)
    await approve(api, admin, review["id"])
    assert [e["topic"] for e in await review_approved_events(db_admin)] == ["review.approved"] * 2


async def test_with_auto_approve_reviews_are_public_at_once_and_stay_so_when_edited(settings, product, token_for,
                                                                                   db_admin) -> None:
    product_id = await product()
    ada, bob = token_for(), token_for()
    async with reviews_client(settings, reviews_auto_approve=True) as auto:
        review = (await auto.ok(CREATE, {"input": review_input(product_id, rating=2)}, ada))["createReview"]
        assert review["status"] == "APPROVED"
        assert (await product_view(auto, product_id, bob))["rating"] == {
            "average": 2.0, "count": 1, "histogram": [0, 1, 0, 0, 0]}
        edited = (await auto.ok(UPDATE, {"id": review["id"], "input": {"rating": 5}}, ada))["updateReview"]
        assert edited["status"] == "APPROVED"
        assert (await product_view(auto, product_id))["rating"] == {
            "average": 5.0, "count": 1, "histogram": [0, 0, 0, 0, 1]}
    assert [e["payload"]["approved_by"] for e in await review_approved_events(db_admin)] == [None]


async def test_pages_follow_each_sort_without_gaps_or_repeats(api, product, token_for) -> None:
    product_id = await product()
    admin = token_for("ADMIN")
    voters = [token_for() for _ in range(3)]
    written = []
    for stars, votes in ((3, 0), (5, 2), (1, 3), (5, 0), (2, 1)):
        review = await write(api, token_for(), product_id, rating=stars, title=f"{stars} stars, {votes} votes")
        await approve(api, admin, review["id"])
        for voter in voters[:votes]:
            await api.ok(VOTE, {"id": review["id"], "h": True}, voter)
        written.append(review)

    async def all_pages(sort: str, **arguments) -> list[str]:
        seen, after = [], None
        while True:
            view = await product_view(api, product_id, first=2, after=after, sort=sort, **arguments)
            seen += titles(view)
            info = view["reviews"]["pageInfo"]
            if not info["hasNextPage"]:
                return seen
            after = info["endCursor"]

    newest = [r["title"] for r in reversed(written)]
    assert await all_pages("NEWEST") == newest
    assert await all_pages("RATING_HIGH") == ["5 stars, 0 votes", "5 stars, 2 votes", "3 stars, 0 votes",
                                              "2 stars, 1 votes", "1 stars, 3 votes"]
    assert await all_pages("RATING_LOW") == ["1 stars, 3 votes", "2 stars, 1 votes", "3 stars, 0 votes",
                                             "5 stars, 0 votes", "5 stars, 2 votes"]
    assert await all_pages("MOST_HELPFUL") == ["1 stars, 3 votes", "5 stars, 2 votes", "2 stars, 1 votes",
                                               "5 stars, 0 votes", "3 stars, 0 votes"]
    assert await all_pages("NEWEST", rating=5) == ["5 stars, 0 votes", "5 stars, 2 votes"]
    assert (await product_view(api, product_id, first=1, rating=5))["reviews"]["totalCount"] == 2

    cursor = (await product_view(api, product_id, first=1, sort="RATING_HIGH"))["reviews"]["pageInfo"]["endCursor"]
    for arguments in ({"after": cursor, "sort": "NEWEST"}, {"after": "garbage"}, {"first": 0}, {"first": 51},
                      {"rating": 6}):
        body = await api.raw(PRODUCTS, {"r": entities(product_id), **arguments})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", arguments


async def test_a_page_of_products_costs_the_same_few_queries_however_many_products(api, product, token_for) -> None:
    admin = token_for("ADMIN")
    product_ids = [await product() for _ in range(20)]
    for product_id in product_ids:
        review = await write(api, token_for(), product_id, rating=product_id % 5 + 1)
        await approve(api, admin, review["id"])
    engine = api.http._transport.app.app.state.resources.session_factory.kw["bind"]
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    async def run(ids: list[int]) -> int:
        statements.clear()
        found = (await api.ok(PRODUCTS, {"r": entities(*ids), "first": 3}))["_entities"]
        assert [e["rating"]["count"] for e in found] == [1] * len(ids)
        assert [len(e["reviews"]["edges"]) for e in found] == [1] * len(ids)
        assert [e["reviews"]["edges"][0]["node"]["rating"] for e in found] == [p % 5 + 1 for p in ids]
        return len(statements)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        two, twenty = await run(product_ids[:2]), await run(product_ids)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert twenty == two <= 3, statements  # rating, the pages, their counts: one query each


async def test_the_moderation_queue_is_for_admins_oldest_first(api, product, token_for) -> None:
    product_id = await product()
    admin = token_for("ADMIN")
    first = await write(api, token_for(), product_id, title="First")
    second = await write(api, token_for(), product_id, title="Second")
    await write(api, token_for(), product_id, title="Third")
    await approve(api, admin, second["id"])
    queue = """query($after: String) { reviewsAwaitingModeration(first: 1, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } edges { node { id title status } } } }"""
    assert await api.error_code(queue, {}, token_for()) == "FORBIDDEN"
    page = (await api.ok(queue, {}, admin))["reviewsAwaitingModeration"]
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"] is True
    assert page["edges"][0]["node"] == {"id": first["id"], "title": "First", "status": "PENDING"}
    rest = (await api.ok(queue, {"after": page["pageInfo"]["endCursor"]}, admin))["reviewsAwaitingModeration"]
    assert [e["node"]["title"] for e in rest["edges"]] == ["Third"] and rest["pageInfo"]["hasNextPage"] is False
