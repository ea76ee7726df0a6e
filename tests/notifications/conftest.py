"""Notifications fixtures: a real SMTP server (aiosmtpd, the same file sink `make run` starts) whose .eml files the
tests read back, the in-process notifications app, and the `notifications` consumer driven through the kernel's
IdempotentConsumer (inbox included), with builders of the events it consumes."""
from __future__ import annotations

import email
import email.policy
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from kernel.consumer import WorkerResources
from kernel.db import create_session_factory
from kernel.settings import Settings
from nexuscart.infra import free_port
from nexuscart.smtp_sink import FileSink
from tests.conftest import GraphQLClient, served_in_process
from tests.event_contracts import as_consumed
from tests.event_driver import EventDriver

_ids = itertools.count(5_000_000_000 + uuid.uuid4().int % 1_000_000_000)


def next_id() -> int:
    return next(_ids)


class MailBox:
    """The .eml files the SMTP server wrote, read back as messages."""

    def __init__(self, directory: Path, url: str) -> None:
        self.directory = directory
        self.url = url

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if to is None or message["To"] == to:
                found.append(message)
        return found


@pytest.fixture(scope="session")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailBox]:
    directory = tmp_path_factory.mktemp("mail")
    port = free_port()
    controller = Controller(FileSink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    yield MailBox(directory, f"smtp://127.0.0.1:{port}")
    controller.stop()


@pytest.fixture
def notifications_settings(settings: Settings, mailbox: MailBox) -> Settings:
    return settings.model_copy(update={
        "smtp_url": mailbox.url, "notifications_secret_key": "test-notifications-key",
        "notifications_public_url": "http://notifications", "notifications_webhook_backoff_seconds": 0.01,
        "notifications_retry_interval_seconds": 0.01})


class Consumer(EventDriver):
    """The `notifications` group, inbox included, with the dependencies its periodic tasks (deliveries, webhooks,
    announcements) take, so a test runs them on what the events stored."""

    def __init__(self, resources: WorkerResources) -> None:
        from subgraphs.notifications.consumers import consumer_specs, deps_of
        (spec,) = consumer_specs(resources)
        super().__init__(resources, spec)
        self.deps = deps_of(resources)


def consumer_for(settings: Settings, service_engine: Any, redis: Any) -> Consumer:
    return Consumer(WorkerResources(settings=settings, session_factory=create_session_factory(service_engine),
                                    redis=redis))


@pytest.fixture
def consumer(notifications_settings, service_engine, redis) -> Consumer:
    return consumer_for(notifications_settings, service_engine, redis)


@pytest.fixture
async def api(notifications_settings: Settings) -> AsyncIterator[GraphQLClient]:
    from subgraphs.notifications.app import build_app
    app = build_app(notifications_settings)
    async with served_in_process(app, "http://notifications", timeout=30) as http:
        yield GraphQLClient(http, "/graphql")


# ---- the events, as their producers write them ----------------------------------------------------------------

def user_registered(user_id: int, address: str, roles: list[str] | None = None) -> dict[str, Any]:
    return as_consumed("user.registered", {"user_id": str(user_id), "email": address, "first_name": "Ada",
                                           "last_name": "Lovelace", "roles": roles or ["CUSTOMER"]})


def order_placed(order_id: int, user_id: int, *, number: str = "NC-1001", name: str = "Trail Shoe") -> dict[str, Any]:
    return as_consumed("order.placed", {
        "order_id": str(order_id), "user_id": str(user_id), "number": number, "cart_id": None,
        "items": [{"variant_id": str(next_id()), "product_id": str(next_id()), "sku": "SHOE-42", "name": name,
                   "quantity": 2, "unit_price": "19.99"}],
        "subtotal": "39.98", "discount": "5.00", "total": "34.98", "currency": "USD",
        "placed_at": datetime.now(UTC).isoformat(), "coupon_code": "SAVE5"})


def order_event(topic: str, order_id: int, user_id: int, **extra: Any) -> dict[str, Any]:
    return as_consumed(topic, {"order_id": str(order_id), "user_id": str(user_id), **extra})


async def shopper(consumer: Consumer, *, roles: list[str] | None = None) -> tuple[int, str]:
    """A user notifications has heard of (user.registered delivered): (id, email address)."""
    user_id = next_id()
    address = f"shopper-{uuid.uuid4().hex[:10]}@example.com"
    assert await consumer.deliver("user.registered", user_registered(user_id, address, roles)) == "applied"
    return user_id, address
