"""Reviews end to end, through the router and real processes: a review written right after a product is listed
(reviews asks the catalog) -> invisible to others while PENDING -> an ADMIN approves it -> Product.rating and
Product.reviews resolved through federation next to catalog's fields, author through users -> the author's order
is paid and orders' events make the review a verified purchase -> votes, the seller's reply, edits."""
from __future__ import annotations

import uuid

from tests.e2e.test_commerce import ADD_TO_CART, eventually, place_order, stocked_variant, wait_for_status

FIELDS = "id rating title status verifiedPurchase helpfulCount author { id firstName } reply { body }"
CREATE = f"mutation($input: CreateReviewInput!) {{ createReview(input: $input) {{ {FIELDS} }} }}"
UPDATE = f"mutation($id: ID!, $input: UpdateReviewInput!) {{ updateReview(id: $id, input: $input) {{ {FIELDS} }} }}"
MODERATE = f"mutation($id: ID!, $d: ReviewDecision!) {{ moderateReview(id: $id, decision: $d) {{ {FIELDS} }} }}"
VOTE = f"mutation($id: ID!) {{ voteReviewHelpful(id: $id, helpful: true) {{ {FIELDS} }} }}"
REPLY = f"mutation($id: ID!, $body: String!) {{ replyToReview(id: $id, body: $body) {{ {FIELDS} }} }}"
REVIEW = f"query($id: ID!) {{ review(id: $id) {{ {FIELDS} }} }}"
PRODUCT = f"""query($id: ID!) {{ product(id: $id) {{ name seller {{ id }} rating {{ average count histogram }}
  reviews(first: 5, sort: MOST_HELPFUL) {{ totalCount edges {{ node {{ {FIELDS} }} }} }} }} }}"""


async def test_a_review_from_writing_to_a_verified_approved_answered_one(router, make_user) -> None:
    admin_id, admin = await make_user("ADMIN")  # the seller: stocked_variant lists the product as the ADMIN
    ada_id, ada = await make_user()
    _, bob = await make_user()
    product_id, variant_id = await stocked_variant(router, admin, 10, price="30.00")
    title = f"Sturdy {uuid.uuid4().hex[:6]}"

    # ada reviews it before buying: PENDING, not verified, hers alone
    review = (await router.ok(CREATE, {"input": {"productId": product_id, "rating": 4, "title": title,
                                                 "body": "Solid <b>build</b>."}}, ada))["createReview"]
    assert (review["status"], review["verifiedPurchase"]) == ("PENDING", False)
    assert review["author"] == {"id": str(ada_id), "firstName": "Test"}
    body = await router.raw(CREATE, {"input": {"productId": product_id, "rating": 5, "title": "Twice"}}, ada)
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert await router.error_code(CREATE, {"input": {"productId": product_id, "rating": 5, "title": "Anon"}}) == \
        "UNAUTHENTICATED"
    hidden = (await router.ok(PRODUCT, {"id": product_id}, bob))["product"]
    assert hidden["reviews"] == {"totalCount": 0, "edges": []}
    assert hidden["rating"] == {"average": None, "count": 0, "histogram": [0, 0, 0, 0, 0]}
    # Anonymous readers' page is kept by reviews and the router; its author still sees her own review in it.
    for _ in range(2):
        assert (await router.ok(PRODUCT, {"id": product_id}))["product"]["reviews"]["totalCount"] == 0
    assert (await router.ok(PRODUCT, {"id": product_id}, ada))["product"]["reviews"]["totalCount"] == 1

    # Approved by an ADMIN: public, counted, next to catalog's and users' fields
    assert await router.error_code(MODERATE, {"id": review["id"], "d": "APPROVE"}, bob) == "FORBIDDEN"
    await router.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)
    # reviews' own cache is exact (the approval bumped its generation); the router may keep the anonymous page
    # read above for up to its TTL (1 s), so anonymous readers see the approval within it.

    async def approved_page() -> dict | None:
        page = (await router.ok(PRODUCT, {"id": product_id}))["product"]
        return page if page["rating"]["count"] == 1 else None

    public = await eventually(approved_page, within=5, what="the approved review on the anonymous page")
    assert public["seller"] == {"id": str(admin_id)} and public["name"].startswith("Spine Widget")
    assert public["rating"] == {"average": 4.0, "count": 1, "histogram": [0, 0, 0, 1, 0]}
    assert [e["node"]["title"] for e in public["reviews"]["edges"]] == [title]

    # ada buys it and the order is paid: orders' events make her review a verified purchase
    await router.ok(ADD_TO_CART, {"cartId": None, "v": variant_id, "q": 1}, ada)
    order = await place_order(router, ada)
    await wait_for_status(router, ada, order["id"], {"PAID"})

    async def verified() -> bool:
        return (await router.ok(REVIEW, {"id": review["id"]}, bob))["review"]["verifiedPurchase"]

    await eventually(verified, what="order.placed and order.paid to verify the review")

    # Votes: once per user, never on your own review
    assert await router.error_code(VOTE, {"id": review["id"]}, ada) == "FORBIDDEN"
    assert (await router.ok(VOTE, {"id": review["id"]}, bob))["voteReviewHelpful"]["helpfulCount"] == 1
    assert (await router.ok(VOTE, {"id": review["id"]}, bob))["voteReviewHelpful"]["helpfulCount"] == 1

    # The seller answers, once; nobody else may
    assert await router.error_code(REPLY, {"id": review["id"], "body": "Not mine to answer"}, bob) == "FORBIDDEN"
    replied = (await router.ok(REPLY, {"id": review["id"], "body": "Thanks, Ada!"}, admin))["replyToReview"]
    assert replied["reply"] == {"body": "Thanks, Ada!"}
    assert await router.error_code(REPLY, {"id": review["id"], "body": "Again"}, admin) == "CONFLICT"

    # Only ada edits it, and an edit sends it back to moderation: out of the public rating meanwhile
    assert await router.error_code(UPDATE, {"id": review["id"], "input": {"rating": 1}}, bob) == "FORBIDDEN"
    edited = (await router.ok(UPDATE, {"id": review["id"], "input": {"rating": 2}}, ada))["updateReview"]
    assert (edited["status"], edited["verifiedPurchase"], edited["helpfulCount"]) == ("PENDING", True, 1)
    assert (await router.ok(PRODUCT, {"id": product_id}, bob))["product"]["rating"]["count"] == 0
    await router.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)
    assert (await router.ok(PRODUCT, {"id": product_id}, bob))["product"]["rating"] == {
        "average": 2.0, "count": 1, "histogram": [0, 1, 0, 0, 0]}


async def test_a_browse_page_carries_ratings_from_one_federated_fetch(router, make_user) -> None:
    _, admin = await make_user("ADMIN")
    _, ada = await make_user()
    product_id, _ = await stocked_variant(router, admin, 1)
    review = (await router.ok(CREATE, {"input": {"productId": product_id, "rating": 5, "title": "Five"}},
                              ada))["createReview"]
    await router.ok(MODERATE, {"id": review["id"], "d": "APPROVE"}, admin)
    browse = """{ products(first: 50) { edges { node { id name rating { count average }
      reviews(first: 1) { edges { node { title author { id } } } } } } } }"""
    nodes = {e["node"]["id"]: e["node"] for e in (await router.ok(browse, {}, ada))["products"]["edges"]}
    assert nodes[product_id]["rating"] == {"count": 1, "average": 5.0}
    assert [e["node"]["title"] for e in nodes[product_id]["reviews"]["edges"]] == ["Five"]
    assert all(n["rating"]["count"] == 0 for pid, n in nodes.items() if pid != product_id)
