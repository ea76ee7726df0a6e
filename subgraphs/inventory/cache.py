"""Response cache of the inventory subgraph.

Only the router's entity fetches (`_entities`, i.e. `ProductVariant.stock` on product pages) are cached,
under the `inventory:gen` generation. Every stock change bumps it once committed (service.py queues it for
adjustStock and initial stock, the event handlers for the saga), so a cached answer is never older than the
last committed change; a read-heavy product page then costs one Redis round trip.
"""
from __future__ import annotations

from kernel.response_cache import Generation

GENERATION = Generation("inventory")
