"""Catalog-only fixtures on top of the shared stack in tests/conftest.py."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture(scope="session")
def catalog_engine(catalog_api: Any) -> AsyncEngine:
    """The engine the in-process catalog app queries through (SQL-count tests listen on it)."""
    app = catalog_api.http._transport.app  # CorrelationMiddleware -> Starlette app
    return app.app.state.resources.session_factory.kw["bind"]
