"""Search backends behind one interface (base.SearchEngine): Postgres by default, Elasticsearch when
ELASTICSEARCH_URL is set."""
from __future__ import annotations

from kernel.settings import Settings
from subgraphs.search.backends.base import SearchEngine


def search_engine(settings: Settings) -> SearchEngine:
    if settings.elasticsearch_url:
        from subgraphs.search.backends.elasticsearch import ElasticsearchSearch
        return ElasticsearchSearch(settings.elasticsearch_url, settings.elasticsearch_index)
    from subgraphs.search.backends.postgres import PostgresSearch
    return PostgresSearch()
