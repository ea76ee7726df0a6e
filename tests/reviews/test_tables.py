"""The tables of subgraphs/reviews/models.py are the migrated ones, column for column (as
tests/kernel/test_tables_match_migrations.py checks for the other domains)."""
from __future__ import annotations

from subgraphs.reviews.models import SCHEMA, metadata


async def test_models_tables_have_the_migrated_columns(db_admin) -> None:
    rows = await db_admin.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1", SCHEMA)
    migrated: dict[str, set[str]] = {}
    for row in rows:
        migrated.setdefault(row["table_name"], set()).add(row["column_name"])
    declared = {table.name: {c.name for c in table.columns} for table in metadata.tables.values()}
    domain_tables = {name: columns for name, columns in migrated.items()
                     if name not in ("outbox", "inbox", "outbox_broker_marks", "schema_migrations")}
    assert declared == domain_tables
