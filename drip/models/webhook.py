"""Outbound webhooks: endpoints, the event types each one hears, the outbox of events to
send, and every delivery attempt.

`webhook_events` is an outbox: a row is inserted in the transaction of the change it
reports (`drip.webhooks.outbox.emit`), one per subscribed endpoint, and holds no address:
the payload's personal fields are read from `contacts` when it is sent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from drip.db import utcnow
from drip.models.base import Base, BigId, UTCDateTime


class EndpointSource(StrEnum):
    """Where an endpoint was configured: `webhooks.yaml` or `drip webhooks add`."""

    FILE = "file"  # webhooks.yaml beside the sequences; synced at startup
    CLI = "cli"  # drip webhooks add


class WebhookStatus(StrEnum):
    """Where an outgoing event stands with its endpoint."""

    PENDING = "pending"  # to send, now or at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up (three days of retries, a 410, a removed endpoint)


class WebhookEndpoint(Base):
    """A receiver: its URL, where its secret is read from, and whether it is still sent to."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    #: The environment variable holding the `whsec_...` secret; the secret is never stored.
    secret_env: Mapped[str] = mapped_column(String(200))
    source: Mapped[EndpointSource] = mapped_column(
        Enum(
            EndpointSource,
            native_enum=False,
            length=8,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookSubscription(Base):
    """One event type an endpoint hears; the outbox INSERT joins on this table."""

    __tablename__ = "webhook_subscriptions"

    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    event_type: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class WebhookEvent(Base):
    """One event for one endpoint: sent until delivered, or failed after the retry window."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        # The recovery job reads pending rows by their due time every tick.
        Index(
            "ix_webhook_events_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: The event's stable id (`evt_` + 32 hex), the same for every endpoint and attempt.
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(40))
    # No foreign key: the event outlives an erased contact, which then sends no address.
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    status: Mapped[WebhookStatus] = mapped_column(
        Enum(
            WebhookStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=WebhookStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: After this, a failed attempt fails the row for good (three days after it was due).
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: When a message for the row was last enqueued: the recovery job re-enqueues a lost one.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A sender holds the row until then (one attempt at a time).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookAttempt(Base):
    """One HTTP attempt: when, the answer (or the error) and how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_event_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
