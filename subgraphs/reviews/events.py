"""The events the reviews domain emits, keyed by the review id. A contract only (consumers.py runs what reviews
consumes): other domains import these types to read the events.

`review.approved` is emitted each time a review becomes APPROVED (an ADMIN's approval, or on writing or editing
with REVIEWS_AUTO_APPROVE), not again while it stays approved. Notifications is its intended consumer (tell
the author it is live, tell the seller there is a new review).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

from kernel.events import EventPayload, Id


@dataclasses.dataclass(frozen=True, slots=True)
class ReviewApproved(EventPayload, topic="review.approved"):
    review_id: Id
    product_id: Id
    author_id: Id
    seller_id: Id | None  # null when the product's seller is not known here
    rating: int
    title: str
    verified_purchase: bool
    approved_at: datetime
    approved_by: Id | None  # null when approved automatically (REVIEWS_AUTO_APPROVE)
