"""The events the users domain emits (via the outbox, in service.py). Nothing consumes any yet."""
from __future__ import annotations

import dataclasses

from kernel.events import EventPayload, Id


@dataclasses.dataclass(frozen=True, slots=True)
class UserRegistered(EventPayload, topic="user.registered"):
    user_id: Id
    email: str
    first_name: str | None
    last_name: str | None
    roles: list[str]
