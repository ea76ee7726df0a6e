"""ASGI app of the recommendations subgraph. Its Recommender (serving.py) holds the served model and the
catalogue in memory; the model is loaded here, once per process, before the first request."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.recommendations.clients import INTERNAL_HTTP, PeerClient, build_internal_client
from subgraphs.recommendations.schema import RECOMMENDER, schema
from subgraphs.recommendations.serving import Recommender


def build_app(settings: Settings | None = None, *, recommender: Recommender | None = None,
              internal_http: PeerClient | None = None) -> Any:
    """trackInteraction asks the catalog (`settings.catalog_service_url`) about a product recommendations has
    not heard of yet, through one pooled PeerClient."""
    settings = settings or get_settings()
    if recommender is None:
        recommender = Recommender(settings.recommendations_model_dir, settings.recommendations_refresh_seconds)
        recommender.load_current_model()
    http = internal_http or build_internal_client(settings.internal_http_timeout_seconds)
    return create_app("recommendations", schema, settings=settings,
                      extras={RECOMMENDER: recommender, INTERNAL_HTTP: http})
