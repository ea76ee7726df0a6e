"""Response cache of the users subgraph.

Only the router's entity fetches (`_entities`: public User fields, e.g. Product.seller) are cached, under the
`users:gen` generation. The service functions that change a user commit-then-bump it (`Generation.bump_after_commit`),
so a cached answer never outlives a committed change to a user.
"""
from __future__ import annotations

from kernel.response_cache import Generation

GENERATION = Generation("users")
