"""GraphQL adapter of the reviews domain: validates input shapes, calls service.py, maps records to types.

Reviews extends two entities it does not own: catalog's `Product` gets `reviews` and `rating`, and a review's
`author` is a reference to users' `User`. The router asks for `rating` / `reviews` of a whole page of products in
one `_entities` fetch: `resolve_reference` builds a stub without I/O and the loaders answer every product with one
query per field.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from kernel.graphql import Info, PageInfo, RequestContext, build_schema
from kernel.ids import entity_key, parse_id
from kernel.response_cache import response_cache_extension
from subgraphs.reviews import cache, service
from subgraphs.reviews.dataloaders import (
    RatingByProductIdLoader,
    ReviewByIdLoader,
    ReviewPageLoader,
    VisibleCountLoader,
)
from subgraphs.reviews.models import RatingRecord, ReviewRecord, ReviewStatus
from subgraphs.reviews.service import ReviewDecision, ReviewSort

# The domain's enums are the GraphQL enums: strawberry.enum registers the class itself (and returns it).
strawberry.enum(ReviewStatus, name="ReviewStatus",
                description="PENDING: waiting for moderation; APPROVED: public; REJECTED: seen by its author only")
strawberry.enum(ReviewDecision, name="ReviewDecision")
strawberry.enum(ReviewSort, name="ReviewSort",
                description="NEWEST first; MOST_HELPFUL (helpfulCount); RATING_HIGH / RATING_LOW (stars); ties: "
                            "newest first")

_HTML_NOTE = "Stored exactly as written, HTML included, and never rendered by NexusCart: escape it when you show it."


@strawberry.federation.type(directives=[Key(fields=FieldSet("id"), resolvable=False)])
class User:
    """Stub of the users subgraph's entity: only the key, resolved there."""

    id: strawberry.ID


@strawberry.type(description="The product seller's answer to a review (one per review).")
class ReviewReply:
    body: str = strawberry.field(description=_HTML_NOTE)
    created_at: datetime


@strawberry.type(description="A customer's review of a product. Only APPROVED reviews are public; the author also "
                             "sees their own PENDING or REJECTED one.")
class Review:
    id: strawberry.ID
    rating: int = strawberry.field(description="1..5 stars")
    title: str = strawberry.field(description=_HTML_NOTE)
    body: str = strawberry.field(description=_HTML_NOTE)
    author: User
    product: Product
    verified_purchase: bool = strawberry.field(description="The author has a paid order containing the product")
    status: ReviewStatus
    helpful_count: int = strawberry.field(description="Users who found it helpful (voteReviewHelpful)")
    reply: ReviewReply | None = strawberry.field(description="The seller's answer, if any")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, review: ReviewRecord) -> Review:
        reply = (ReviewReply(body=review.reply_body, created_at=review.replied_at)
                 if review.reply_body is not None and review.replied_at is not None else None)
        return cls(id=strawberry.ID(str(review.id)), rating=review.rating, title=review.title, body=review.body,
                   author=User(id=strawberry.ID(str(review.author_id))),
                   product=Product(id=strawberry.ID(str(review.product_id))),
                   verified_purchase=review.verified_purchase, status=ReviewStatus(review.status),
                   helpful_count=review.helpful_count, reply=reply, created_at=review.created_at,
                   updated_at=review.updated_at)


@strawberry.type
class ReviewEdge:
    cursor: str
    node: Review


@strawberry.type
class ReviewConnection:
    edges: list[ReviewEdge]
    page_info: PageInfo
    _total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Reviews matching the arguments (all pages).")
    async def total_count(self) -> int:
        return await self._total()


@strawberry.type(description="A product's APPROVED reviews in figures.")
class ProductRating:
    average: float | None = strawberry.field(description="Mean stars, rounded to 2 decimals; null without reviews")
    count: int
    histogram: list[int] = strawberry.field(description="Reviews per star: index 0 is 1 star, index 4 is 5 stars")

    @classmethod
    def from_record(cls, rating: RatingRecord) -> ProductRating:
        return cls(average=rating.average, count=rating.count, histogram=list(rating.stars))


# Owned by catalog; reviews contributes `reviews` and `rating` (no description here: composition keeps catalog's).
@strawberry.federation.type(keys=["id"])
class Product:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, **_unknown: Any) -> Product | None:
        # No I/O: every product has reviews and a rating here (none and empty if nobody reviewed it).
        return cls(id=id) if entity_key(id) is not None else None

    @strawberry.field(description=(
        "Its APPROVED reviews (and, signed in, your own whatever its status). first: 1..50; `after` takes an "
        "endCursor of the same sort; `rating` keeps only reviews with that many stars."))
    async def reviews(self, info: Info, first: int | None = 10, after: str | None = None,
                      sort: ReviewSort | None = ReviewSort.NEWEST, rating: int | None = None) -> ReviewConnection:
        ctx = info.context
        viewer = ctx.user
        if viewer is not None:
            ctx.mark_uncacheable()
        product_id = int(self.id)  # a valid id: resolve_reference checked it
        request = service.page_request(sort=sort or ReviewSort.NEWEST, rating=rating,
                                       first=10 if first is None else first, after=after, viewer=viewer)
        page = await ctx.loader(ReviewPageLoader).load((request, product_id))
        edges = [ReviewEdge(cursor=c, node=Review.from_record(r)) for r, c in zip(page.reviews, page.cursors,
                                                                                   strict=True)]
        count_key = (request.rating, request.viewer_id, product_id)
        return ReviewConnection(
            edges=edges, page_info=PageInfo(has_next_page=page.has_next_page,
                                            end_cursor=edges[-1].cursor if edges else None),
            _total=lambda: ctx.loader(VisibleCountLoader).load(count_key))

    @strawberry.field(description="Its APPROVED reviews in figures, from a summary kept with every change.")
    async def rating(self, info: Info) -> ProductRating:
        return ProductRating.from_record(await info.context.loader(RatingByProductIdLoader).load(int(self.id)))


@strawberry.input(description="A review of a product. " + _HTML_NOTE)
class CreateReviewInput:
    product_id: strawberry.ID
    rating: int = strawberry.field(description="1..5 stars")
    title: str = strawberry.field(description="1..120 characters, one line, no control characters")
    body: str = strawberry.field(default="", description="Up to 5,000 characters; line breaks and tabs are kept, "
                                                         "other control characters refused")

    def to_service(self) -> service.ReviewIn:
        return service.ReviewIn(product_id=parse_id(self.product_id, field="productId"), rating=self.rating,
                                title=self.title, body=self.body)


@strawberry.input(description="What to change in a review (omitted fields stay). " + _HTML_NOTE)
class UpdateReviewInput:
    rating: int | None = strawberry.field(default=None, description="1..5 stars")
    title: str | None = strawberry.field(default=None, description="1..120 characters, one line")
    body: str | None = strawberry.field(default=None, description="Up to 5,000 characters")

    def to_service(self) -> service.ReviewChange:
        return service.ReviewChange(rating=self.rating, title=self.title, body=self.body)


def _ctx(info: Info) -> RequestContext:
    ctx = info.context
    ctx.mark_uncacheable()
    return ctx


@strawberry.type
class Query:
    @strawberry.field(description="A review by id: null when unknown or not yours to see (another user's PENDING "
                                  "or REJECTED review).")
    async def review(self, info: Info, id: strawberry.ID) -> Review | None:
        ctx = _ctx(info)
        review_id = parse_id(id)
        review = await ctx.loader(ReviewByIdLoader).load(review_id)
        return Review.from_record(review) if review is not None and service.can_see(review, ctx.user) else None

    @strawberry.field(description="ADMIN: PENDING reviews, oldest first (the moderation queue). first: 1..50; "
                                  "`after` takes an endCursor.")
    async def reviews_awaiting_moderation(self, info: Info, first: int | None = 20,
                                          after: str | None = None) -> ReviewConnection:
        ctx = _ctx(info)
        rows, has_next = await service.awaiting_moderation(
            await ctx.session(), caller=ctx.require_user(), first=20 if first is None else first,
            after=parse_id(after, field="after") if after is not None else None)
        edges = [ReviewEdge(cursor=str(r.id), node=Review.from_record(r)) for r in rows]

        async def total() -> int:
            return await service.count_awaiting_moderation(await ctx.session())

        return ReviewConnection(edges=edges, page_info=PageInfo(has_next_page=has_next,
                                                                end_cursor=edges[-1].cursor if edges else None),
                                _total=total)


@strawberry.type
class Mutation:
    @strawberry.mutation(description=(
        "Signed in: review a product, once (CONFLICT for a second review; edit that one instead). PENDING until an "
        "ADMIN approves it. NOT_FOUND for an unknown product; FORBIDDEN for the product's own seller."))
    async def create_review(self, info: Info, input: CreateReviewInput) -> Review:
        ctx = _ctx(info)
        caller = ctx.require_user()
        review = await service.create_review(await ctx.session(), ctx.redis, ctx.settings, caller=caller,
                                             review_in=input.to_service(),
                                             http=ctx.resources.peers)
        return Review.from_record(review)

    @strawberry.mutation(description=(
        "Its author only (FORBIDDEN for others): change rating, title or body. An edited review is moderated "
        "again (PENDING)."))
    async def update_review(self, info: Info, id: strawberry.ID, input: UpdateReviewInput) -> Review:
        ctx = _ctx(info)
        caller = ctx.require_user()
        review = await service.update_review(await ctx.session(), ctx.redis, ctx.settings, caller=caller,
                                             review_id=parse_id(id), change=input.to_service())
        return Review.from_record(review)

    @strawberry.mutation(description="Its author or an ADMIN (FORBIDDEN for others). Its votes go with it.")
    async def delete_review(self, info: Info, id: strawberry.ID) -> bool:
        ctx = _ctx(info)
        caller = ctx.require_user()
        return await service.delete_review(await ctx.session(), ctx.redis, ctx.settings, caller=caller,
                                           review_id=parse_id(id))

    @strawberry.mutation(description=(
        "ADMIN: APPROVE publishes a review (it counts in Product.rating), REJECT hides it from everyone but its "
        "author. Works on an already moderated review too; the same decision again changes nothing."))
    async def moderate_review(self, info: Info, id: strawberry.ID, decision: ReviewDecision) -> Review:
        ctx = _ctx(info)
        caller = ctx.require_user()
        review = await service.moderate_review(await ctx.session(), ctx.redis, caller=caller, review_id=parse_id(id),
                                               decision=decision)
        return Review.from_record(review)

    @strawberry.mutation(description=(
        "Signed in: helpful true counts your vote (once), false takes it back. FORBIDDEN on your own review; "
        "CONFLICT on a review that is not published."))
    async def vote_review_helpful(self, info: Info, id: strawberry.ID, helpful: bool) -> Review:
        ctx = _ctx(info)
        caller = ctx.require_user()
        review = await service.vote_helpful(await ctx.session(), ctx.redis, ctx.settings, caller=caller,
                                            review_id=parse_id(id), helpful=helpful)
        return Review.from_record(review)

    @strawberry.mutation(description=(
        "The product's seller only (FORBIDDEN for anyone else): answer a review, once (CONFLICT for a second "
        "reply). body: 1..5,000 characters. " + _HTML_NOTE))
    async def reply_to_review(self, info: Info, id: strawberry.ID, body: str) -> Review:
        ctx = _ctx(info)
        caller = ctx.require_user()
        review = await service.reply_to_review(await ctx.session(), ctx.redis, ctx.settings, caller=caller,
                                               review_id=parse_id(id), body=body)
        return Review.from_record(review)


# The router's entity fetches only (cache.py): every other query is about the caller or for an ADMIN. Anonymous
# readers only: a signed-in reader's `reviews` include their own unpublished review.
ResponseCache = response_cache_extension(generation=cache.GENERATION, root_fields=frozenset({"_entities"}),
                                         anonymous_only=True)
schema = build_schema(query=Query, mutation=Mutation, types=[Product, User], extensions=[ResponseCache])
