from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, MetaData, Numeric, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "payments"


class Base(DeclarativeBase):
    """The declarative base of the `payments` tables: they live in the domain's own Postgres schema."""
    metadata = MetaData(schema=SCHEMA)


class PaymentStatus(str, enum.Enum):
    # "Charge pending": the row is committed before the provider is asked, and the charging transaction holds
    # its lock until the answer is recorded; one left behind (a crash) is resumed by a retry or the reconciler.
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"  # the provider has not decided (or could not be reached): the reconciler asks
    REQUIRES_ACTION = "REQUIRES_ACTION"  # the shopper must complete a step (3-D Secure): Payment.nextAction
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


# The provider has not decided these yet; a charge's status only ever moves from here to a decided one.
OPEN_STATUSES = frozenset({PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION})
# Money was captured (some of it may be refunded since).
CAPTURED_STATUSES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})


class RefundStatus(str, enum.Enum):
    PENDING = "PENDING"  # committed before the provider is asked; counts against what is left to refund
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class PaymentRow(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))  # None only for a tombstone
    currency: Mapped[str | None] = mapped_column(String(3))
    provider: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    payment_method: Mapped[str | None] = mapped_column(Text)
    next_action_type: Mapped[str | None] = mapped_column(Text)
    client_secret: Mapped[str | None] = mapped_column(Text)
    redirect_url: Mapped[str | None] = mapped_column(Text)
    captured_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    refunded_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")

    @property
    def is_tombstone(self) -> bool:
        """Cancelled before a charge was ever requested: not a payment anyone made."""
        return self.amount is None


class ProviderCallRow(Base):
    __tablename__ = "provider_calls"
    idempotency_key: Mapped[str] = mapped_column(Text, primary_key=True)
    payment_id: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefundRow(Base):
    __tablename__ = "refunds"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    payment_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChargeIntentRow(Base):
    __tablename__ = "charge_intents"
    payment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reference: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
