"""Response cache of the reviews subgraph.

Only the router's entity fetches (`_entities`: a product page's `rating` and `reviews`) for anonymous readers are
cached, under the `reviews:gen` generation: a signed-in reader's `reviews` include their own unpublished review,
so their requests never use the cache (the lookup comes before any resolver). Every change to what those answers
show bumps the generation once committed: a review written, edited, deleted or moderated, a helpful vote, a
seller's reply (service.py), and a purchase that makes reviews verified (consumers.py). Cached answers are then
marked shared, so the router keeps anonymous product pages with reviews for its short TTL too.
"""
from __future__ import annotations

from kernel.response_cache import Generation

GENERATION = Generation("reviews")
