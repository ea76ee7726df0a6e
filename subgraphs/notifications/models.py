"""Tables and records of the notifications domain (schema `notifications`; the DDL is migrations/*.sql)."""
from __future__ import annotations

import dataclasses
import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

SCHEMA = "notifications"
metadata = MetaData(schema=SCHEMA)

recipients = Table(
    "recipients", metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("email", Text, nullable=False),
    Column("roles", ARRAY(Text), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

order_facts = Table(
    "order_facts", metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("number", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("subtotal", Numeric(18, 2), nullable=False),
    Column("discount", Numeric(18, 2), nullable=False),
    Column("total", Numeric(18, 2), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
)

# Events about an order that came before its order.placed (migration 0002).
early_order_events = Table(
    "early_order_events", metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("order_id", BigInteger, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

notifications = Table(
    "notifications", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("kind", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("order_id", BigInteger),
    Column("link", Text),
    Column("in_app", Boolean, nullable=False),
    Column("read_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("notification_id", BigInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("channel", Text, nullable=False),
    Column("recipient", BigInteger, nullable=False),
    Column("address", Text),
    Column("status", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("text_body", Text, nullable=False),
    Column("html_body", Text),
    Column("marketing", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_until", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

preferences = Table(
    "preferences", metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("category", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

flash_sales = Table(
    "flash_sales", metadata,
    Column("sale_id", BigInteger, primary_key=True),
    Column("variant_id", BigInteger, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("announced_at", DateTime(timezone=True)),
)

flash_sale_reminders = Table(
    "flash_sale_reminders", metadata,
    Column("sale_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

webhook_subscriptions = Table(
    "webhook_subscriptions", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("secret_encrypted", LargeBinary, nullable=False),
    Column("created_by", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("subscription_id", BigInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_until", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class Category(str, enum.Enum):
    TRANSACTIONAL = "TRANSACTIONAL"  # about the user's own orders, payments, reviews: email cannot be turned off
    MARKETING = "MARKETING"          # flash-sale reminders: every channel can be turned off (one-click unsubscribe)


class Channel(str, enum.Enum):
    EMAIL = "EMAIL"
    IN_APP = "IN_APP"
    SMS = "SMS"
    PUSH = "PUSH"


class Kind(str, enum.Enum):
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_PAID = "ORDER_PAID"
    ORDER_SHIPPED = "ORDER_SHIPPED"
    ORDER_DELIVERED = "ORDER_DELIVERED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    REFUND_ISSUED = "REFUND_ISSUED"
    REVIEW_APPROVED = "REVIEW_APPROVED"
    LOW_STOCK = "LOW_STOCK"
    FLASH_SALE_STARTING = "FLASH_SALE_STARTING"


class DeliveryStatus(str, enum.Enum):
    PENDING = "PENDING"          # to be sent (after the commit; the retry job takes it when that did not happen)
    SENT = "SENT"                # the provider (SMTP server, SMS/push endpoint) accepted it
    FAILED = "FAILED"            # every attempt failed (NOTIFICATIONS_SEND_MAX_ATTEMPTS): parked
    UNAVAILABLE = "UNAVAILABLE"  # the channel is not configured here (SMTP_URL / SMS_PROVIDER_URL / ...)
    DISABLED = "DISABLED"        # the user turned this channel off for this category
    NO_ADDRESS = "NO_ADDRESS"    # no address known for the user (no user.registered seen)


class WebhookStatus(str, enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    PARKED = "PARKED"  # NOTIFICATIONS_WEBHOOK_MAX_ATTEMPTS failed attempts


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: int
    user_id: int
    kind: str
    category: str
    title: str
    body: str
    order_id: int | None
    link: str | None
    read_at: datetime | None
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    notification_id: int
    event_id: str
    channel: str
    recipient: int
    address: str | None
    status: str
    subject: str
    text_body: str
    html_body: str | None
    marketing: bool
    attempts: int


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How a leased ledger row's send ended."""
    delivery_id: int
    status: str  # SENT, FAILED (parked), or PENDING again from next_attempt_at
    at: datetime
    error: str | None
    next_attempt_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookSubscriptionRecord:
    id: int
    url: str
    event_types: list[str]
    secret_encrypted: bytes
    created_by: int
    active: bool
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookDeliveryRecord:
    id: int
    subscription_id: int
    event_id: str
    event_type: str
    body: bytes
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
