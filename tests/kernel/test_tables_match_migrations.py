"""The tables in each domain's models.py (what its repository's Core statements are built on) describe the
migrated schema exactly: the same tables and the same columns, so a Core statement never names a column the
migrations do not create, and a column added by a migration is not forgotten by the models."""
from __future__ import annotations

import importlib

import pytest
from sqlalchemy import MetaData

DOMAINS_WITH_TABLES = ["users", "catalog", "inventory", "orders", "payments", "promotions", "search", "partners"]


def _metadata(domain: str) -> MetaData:
    models = importlib.import_module(f"subgraphs.{domain}.models")
    metadata = getattr(models, "metadata", None)
    return metadata if isinstance(metadata, MetaData) else models.Base.metadata


@pytest.mark.parametrize("domain", DOMAINS_WITH_TABLES)
async def test_models_tables_have_the_migrated_columns(db_admin, domain: str) -> None:
    metadata = _metadata(domain)
    assert metadata.tables, f"{domain}/models.py declares no tables"
    rows = await db_admin.fetch(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN pg_class t ON t.relname = c.table_name "
        "JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = c.table_schema "
        "WHERE c.table_schema = $1 AND NOT t.relispartition", domain)
    migrated: dict[str, set[str]] = {}
    for row in rows:
        migrated.setdefault(row["table_name"], set()).add(row["column_name"])
    for table in metadata.tables.values():
        assert table.schema == domain
        assert table.name in migrated, f"{domain}.{table.name} is not a migrated table"
        assert {c.name for c in table.columns} == migrated[table.name], f"{domain}.{table.name}"
