"""The events the recommendations domain emits. A contract only (consumers.py runs what the domain consumes).

`interaction.recorded` is emitted by trackInteraction, keyed by the subject ("user:<id>" or "session:<id>") so one
shopper's interactions stay ordered. The domain's own worker stores it in `interactions` (the training data);
`interaction_id` is unique per interaction, so storing it twice changes nothing. Ids only, no personal data.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

from kernel.events import EventPayload, Id


@dataclasses.dataclass(frozen=True, slots=True)
class InteractionRecorded(EventPayload, topic="interaction.recorded"):
    interaction_id: str  # a UUID
    subject: str
    user_id: Id | None  # null for a guest
    session_id: str | None  # the guest session it came from (also given signed in: that session is linked)
    product_id: Id
    kind: str  # VIEW | CLICK | ADD_TO_CART | WISHLIST
    source: str | None  # where on the storefront it happened, as the client names it
    occurred_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentExposed(EventPayload, topic="experiment.exposed"):
    """A subject saw recommendedForYou from a variant of a running experiment for the first time (experiments.py),
    keyed by the subject. An analytics stream: nothing in the platform consumes it."""
    experiment_key: str
    variant: str
    subject: str
    model_version: str | None  # the registry version the variant serves; null: the current one
    exposed_at: datetime
