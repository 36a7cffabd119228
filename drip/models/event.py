"""Provider events, stored once each by the provider's `sg_event_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from drip.db import utcnow
from drip.models.base import Base, BigId, UTCDateTime


class ProviderEvent(Base):
    """An event SendGrid reported (processed, delivered, bounce...), stored once by its id."""

    __tablename__ = "provider_events"
    __table_args__ = (
        # Events stored but not applied yet (their message was lost): read every tick.
        Index(
            "ix_provider_events_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sg_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    # No foreign key: an event may name a delivery this database no longer has.
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
