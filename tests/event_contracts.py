"""The consumer's side of what a producer wrote: test helpers that read outbox rows pass each payload here."""
from __future__ import annotations

from typing import Any

from kernel.events import load_contracts


def as_consumed(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` unchanged, once its topic's payload type has parsed it (what every consumer does first) and
    written it back identically (the wire format has one spelling). Fails on a payload a consumer would park
    on the DLQ as malformed."""
    payload_type = load_contracts()[topic]
    assert payload_type.from_payload(payload).to_payload() == payload, f"{topic} does not round-trip"
    return payload
