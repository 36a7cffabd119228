"""The tables of event retention: seen provider event ids, per-day counts, the days counted.

Raw provider events are kept for `DRIP_EVENT_RETENTION` (`drip.retention`); what outlives
them is counted here. `provider_event_ids` is the idempotency key of `provider_events`
(on PostgreSQL a partitioned table cannot hold a unique key without its partition key).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from drip.models.base import Base, UTCDateTime


class ProviderEventId(Base):
    """An `sg_event_id` already stored: a replay of it inserts nothing."""

    __tablename__ = "provider_event_ids"

    sg_event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EventCount(Base):
    """Distinct deliveries with a provider event of one kind, per day the delivery was created,
    sequence and step: the aggregated part of the funnel."""

    __tablename__ = "provider_event_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sequence_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: The provider's event name, or `machine_open` for opens SendGrid flagged as a machine's.
    event: Mapped[str] = mapped_column(String(32), primary_key=True)
    deliveries: Mapped[int] = mapped_column(BigInteger)


class EventDay(Base):
    """A day of raw provider events (by `received_at`, UTC) counted into
    `provider_event_counts`, and when."""

    __tablename__ = "provider_event_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    counted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HousekeepingRun(Base):
    """When a periodic job last ran, shared by every scheduler process."""

    __tablename__ = "housekeeping_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
