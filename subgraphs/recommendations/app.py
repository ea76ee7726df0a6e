"""ASGI app of the recommendations subgraph. Its Recommender (serving.py) holds the served model and the
catalogue in memory; the model is loaded here, once per process, before the first request."""
from __future__ import annotations

from typing import Any

from kernel.app import create_app
from kernel.settings import Settings, get_settings
from subgraphs.recommendations.schema import RECOMMENDER, schema
from subgraphs.recommendations.serving import Recommender


def build_app(settings: Settings | None = None, *, recommender: Recommender | None = None) -> Any:
    """trackInteraction asks the catalog (`settings.catalog_service_url`) about a product recommendations has
    not heard of yet, through the process's peer client."""
    settings = settings or get_settings()
    if recommender is None:
        recommender = Recommender(settings.recommendations_model_dir, settings.recommendations_refresh_seconds)
        recommender.load_current_model()
    return create_app("recommendations", schema, settings=settings, extras={RECOMMENDER: recommender})
