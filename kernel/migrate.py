"""Ordered SQL migrations per domain schema.

Each domain keeps `migrations/NNNN_name.sql`; applied files are recorded in `<schema>.schema_migrations`
with a checksum, so an edited, already-applied migration is refused instead of silently skipped.
Kernel migrations (outbox, inbox) run first in every domain schema. A Postgres advisory lock makes
concurrent runs (several processes starting at once) safe.
"""
from __future__ import annotations

import hashlib
import logging
from importlib import resources

import asyncpg

from kernel.db import asyncpg_dsn

log = logging.getLogger("nexuscart.migrate")

_LOCK_KEY = 0x6E657875  # "nexu"


def _migration_files(package: str) -> list[tuple[str, str]]:
    folder = resources.files(package)
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name, p.read_text()) for p in files]


async def migrate_domain(conn: asyncpg.Connection, schema: str, package: str) -> list[str]:
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
            name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
    rows = await conn.fetch(f"SELECT name, checksum FROM {schema}.schema_migrations")
    applied = {r["name"]: r["checksum"] for r in rows}
    done: list[str] = []
    for source, (name, sql) in [("kernel", f) for f in _migration_files("kernel.migrations")] + \
                               [(schema, f) for f in _migration_files(package)]:
        key = f"{source}:{name}"
        sql = sql.replace("{schema}", schema)
        checksum = hashlib.sha256(sql.encode()).hexdigest()
        if key in applied:
            if applied[key] != checksum:
                raise RuntimeError(f"migration {key} in schema {schema} was edited after it was applied")
            continue
        async with conn.transaction():
            await conn.execute(sql)
            await conn.execute(f"INSERT INTO {schema}.schema_migrations(name, checksum) VALUES ($1, $2)", key, checksum)
        done.append(key)
        log.info("applied migration", extra={"schema": schema, "migration": key})
    return done


async def migrate_all(database_url: str, domains: dict[str, str]) -> dict[str, list[str]]:
    """domains: schema name -> package holding its migrations (e.g. 'subgraphs.users.migrations')."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            return {schema: await migrate_domain(conn, schema, package) for schema, package in domains.items()}
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
