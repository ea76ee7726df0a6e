"""Tables and records of the partners domain (schema `partners`; the DDL is migrations/*.sql)."""
from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY

SCHEMA = "partners"
metadata = MetaData(schema=SCHEMA)

api_keys = Table(
    "api_keys", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("persisted_only", Boolean, nullable=False),
    Column("rate_limit_per_minute", Integer, nullable=False),
    Column("created_by", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: int
    name: str
    secret_hash: str
    scopes: tuple[str, ...]
    persisted_only: bool
    rate_limit_per_minute: int
    created_at: datetime
    revoked_at: datetime | None
