"""Provider events, stored once each by the provider's `sg_event_id`.

On PostgreSQL the table is partitioned by month of `received_at` (`drip.retention`), so
its primary key is (id, received_at) and `sg_event_id` is kept unique through the
`provider_event_ids` table; SQLite keeps one plain table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, String, false, text
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
    sg_event_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(32))
    # No foreign key: an event may name a delivery this database no longer has.
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The delivery's first event of this name: the row the funnel counts, as it is stored
    #: (the trigger of `drip.reports.counting`).
    first_of_kind: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The delivery's first open that SendGrid flagged `sg_machine_open`.
    first_machine_open: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
