"""Deliveries: the durable schedule, one row per (enrollment, step, resend number).

The row is the exactly-once guard. Every move of its status is a conditional UPDATE on
the expected current status, so two workers holding the same message can never both pass
`queued -> sending`; the moves, including the ones back (a refused enqueue, a pause, a
retry), are listed once, in `drip.deliveries.transitions`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from drip.db import utcnow
from drip.models.base import Base, BigId, UTCDateTime


class DeliveryStatus(StrEnum):
    """Where a delivery stands; the moves between statuses are `drip.deliveries.transitions`."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


#: Statuses from which a delivery may still become `sent`.
PENDING = (DeliveryStatus.SCHEDULED, DeliveryStatus.QUEUED, DeliveryStatus.SENDING)


#: A row the planner made: a resend or a confirmation is off the planned line.
PLANNED = "resend = false AND step_id <> '_confirm'"
#: At most one planned row per (enrollment, step) may be pending, and at most one sent.
PENDING_PLANNED = f"status IN ('scheduled', 'queued', 'sending') AND {PLANNED}"
SENT_PLANNED = f"status = 'sent' AND {PLANNED}"


class Delivery(Base):
    """One email of an enrolment: a planned step (one per step and run), a resend, or a
    confirmation."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", "resend_number"),
        # The scheduler's claim reads only due rows: cost grows with them, not with the table.
        Index(
            "ix_deliveries_due",
            "due_at",
            postgresql_where=text("status = 'scheduled'"),
            sqlite_where=text("status = 'scheduled'"),
        ),
        Index(
            "ix_deliveries_lease",
            "lease_until",
            postgresql_where=text("status IN ('queued', 'sending')"),
            sqlite_where=text("status IN ('queued', 'sending')"),
        ),
        Index("ix_deliveries_contact_status", "contact_id", "status"),
        # A planning bug becomes a refused insert instead of a second email (0005, per run 0008).
        Index(
            "ux_deliveries_pending_planned",
            "enrollment_id",
            "run",
            "step_id",
            unique=True,
            postgresql_where=text(PENDING_PLANNED),
            sqlite_where=text(PENDING_PLANNED),
        ),
        Index(
            "ux_deliveries_sent_planned",
            "enrollment_id",
            "run",
            "step_id",
            unique=True,
            postgresql_where=text(SENT_PLANNED),
            sqlite_where=text(SENT_PLANNED),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    sequence_id: Mapped[str] = mapped_column(String(100))
    step_id: Mapped[str] = mapped_column(String(100))
    resend_number: Mapped[int] = mapped_column(Integer, default=0)
    #: The run of its enrolment the row belongs to (`Enrollment.run`).
    run: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Sent again on an operator's or subscriber's request: it never plans a next step.
    resend: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(
            DeliveryStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=DeliveryStatus.SCHEDULED,
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    sequence_version: Mapped[str | None] = mapped_column(String(16))
    #: The subject variant of a subject test this row was sent with (0 is the first).
    subject_variant: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
