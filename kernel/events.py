"""The event envelope every domain event travels in (see DESIGN.md, Events)."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson


@dataclasses.dataclass(frozen=True, slots=True)
class EventEnvelope:
    event_id: str
    event_type: str
    event_version: int
    timestamp: str
    correlation_id: str | None
    payload: dict[str, Any]

    @classmethod
    def new(cls, event_type: str, payload: dict[str, Any], *, correlation_id: str | None = None,
            event_version: int = 1) -> "EventEnvelope":
        return cls(event_id=str(uuid.uuid4()), event_type=event_type, event_version=event_version,
                   timestamp=datetime.now(timezone.utc).isoformat(), correlation_id=correlation_id,
                   payload=payload)

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> "EventEnvelope":
        data = orjson.loads(raw)
        missing = {f.name for f in dataclasses.fields(cls)} - data.keys()
        if missing:
            raise ValueError(f"event envelope is missing {sorted(missing)}")
        return cls(event_id=str(data["event_id"]), event_type=str(data["event_type"]),
                   event_version=int(data["event_version"]), timestamp=str(data["timestamp"]),
                   correlation_id=data["correlation_id"], payload=dict(data["payload"]))
