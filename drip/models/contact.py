"""Contacts: one row per address, with the subscription status that every send re-checks."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drip.db import utcnow
from drip.models.base import Base, BigId, UTCDateTime


class ContactStatus(StrEnum):
    """Whether a contact may be mailed: active, or why not (unsubscribed, suppressed, forgotten)."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"
    FORGOTTEN = "forgotten"


#: Suppression reasons after which an address is never mailed again, even if it signs up:
#: the provider said it bounces, or its owner reported spam.
HARD_SUPPRESSIONS = ("bounce", "dropped", "spamreport")


def new_public_id() -> str:
    """A random, unguessable id for links; the row id never leaves the database."""
    return uuid.uuid4().hex


class Contact(Base):
    """A subscriber, known by a keyed hash of the address; `forget` erases the address."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str | None] = mapped_column(String(100))
    #: When the subscriber consented, as an import's file states it (0009); None for a
    #: contact that signed up through drip, whose `created_at` is that moment.
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[ContactStatus] = mapped_column(
        Enum(
            ContactStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=ContactStatus.ACTIVE,
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_subscribed(self) -> bool:
        """Whether the contact may be sent a sequence's emails (active)."""
        return self.status is ContactStatus.ACTIVE

    @property
    def is_hard_suppressed(self) -> bool:
        """Bounced or complained: never mailed again, whatever it signs up for."""
        return self.status is ContactStatus.SUPPRESSED and (self.status_reason or "").startswith(
            HARD_SUPPRESSIONS
        )
