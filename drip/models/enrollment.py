"""Enrollments: a contact in a sequence, at most once per (contact, sequence)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from drip.db import utcnow
from drip.models.base import Base, BigId, UTCDateTime


class EnrollmentStatus(StrEnum):
    """Where a contact's run of a sequence stands."""

    PENDING = "pending"  # waiting for the subscriber to confirm (double opt-in, re-signup)
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    CONVERTED = "converted"  # a goal event (`exit:`) ended the run


class Enrollment(Base):
    """A contact in a sequence: at most one per (contact, sequence), its runs counted by `run`."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("contact_id", "sequence_id"),
        # The scheduler expires unconfirmed signups every tick: only pending rows are read.
        Index(
            "ix_enrollments_pending",
            "confirm_requested_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    sequence_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[EnrollmentStatus] = mapped_column(
        Enum(
            EnrollmentStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=EnrollmentStatus.ACTIVE,
    )
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: How many times the enrolment started again (`reentry:`); 0 for the first run.
    run: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
