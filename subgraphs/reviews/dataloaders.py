"""Per-request loaders (built fresh per request through `RequestContext.loader`): a browse page that asks for
`rating` and `reviews` of twenty products reaches this subgraph as one `_entities` fetch, and these turn it into
one query per field instead of one per product."""
from __future__ import annotations

from collections import defaultdict

from kernel.graphql import ContextLoader
from subgraphs.reviews import service
from subgraphs.reviews.models import RatingRecord, ReviewRecord


class RatingByProductIdLoader(ContextLoader[int, RatingRecord]):
    """Every asked product's summary row in ONE query (an empty rating where there is none)."""

    async def batch_load(self, keys: list[int]) -> list[RatingRecord]:
        return await service.ratings(await self.context.session(), keys)


class ReviewPageLoader(ContextLoader[tuple[service.PageRequest, int], service.ReviewPage]):
    """Key: (what the field asks for, product id). ONE query per distinct request (normally one per operation)
    for all the products that ask it."""

    async def batch_load(self, keys: list[tuple[service.PageRequest, int]]) -> list[service.ReviewPage]:
        by_request: dict[service.PageRequest, list[int]] = defaultdict(list)
        for request, product_id in keys:
            by_request[request].append(product_id)
        session = await self.context.session()
        pages: dict[tuple[service.PageRequest, int], service.ReviewPage] = {}
        for request, product_ids in by_request.items():
            for product_id, page in (await service.review_pages(session, request, product_ids)).items():
                pages[(request, product_id)] = page
        return [pages[k] for k in keys]


class VisibleCountLoader(ContextLoader[tuple[int | None, int | None, int], int]):
    """Key: (rating filter, viewer id, product id): how many reviews the viewer sees, one grouped query."""

    async def batch_load(self, keys: list[tuple[int | None, int | None, int]]) -> list[int]:
        by_filter: dict[tuple[int | None, int | None], list[int]] = defaultdict(list)
        for rating, viewer_id, product_id in keys:
            by_filter[(rating, viewer_id)].append(product_id)
        session = await self.context.session()
        counts: dict[tuple[int | None, int | None, int], int] = {}
        for (rating, viewer_id), product_ids in by_filter.items():
            found = await service.count_visible(session, product_ids, rating=rating, viewer_id=viewer_id)
            for product_id in product_ids:
                counts[(rating, viewer_id, product_id)] = found.get(product_id, 0)
        return [counts[k] for k in keys]


class ReviewByIdLoader(ContextLoader[int, ReviewRecord | None]):
    async def batch_load(self, keys: list[int]) -> list[ReviewRecord | None]:
        return await service.reviews_by_ids(await self.context.session(), keys)
