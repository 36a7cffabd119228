"""The tables of event retention: seen provider event ids, and when a periodic job ran.

Raw provider events are kept for `DRIP_EVENT_RETENTION` (`drip.retention`); what outlives
them is their count in `delivery_counts` (`drip.reports.counting`), kept as they are
stored. `provider_event_ids` is the idempotency key of `provider_events` (on PostgreSQL a
partitioned table cannot hold a unique key without its partition key).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from drip.models.base import Base, UTCDateTime


class ProviderEventId(Base):
    """An `sg_event_id` already stored: a replay of it inserts nothing."""

    __tablename__ = "provider_event_ids"

    sg_event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class HousekeepingRun(Base):
    """When a periodic job last ran, shared by every scheduler process."""

    __tablename__ = "housekeeping_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
