"""Removing raw provider events older than the retention.

A month goes when it ends at least `retention` before now: its partition is dropped on
PostgreSQL (its rows are deleted on SQLite, and from the default partition), and the seen
ids of the same period with it. Nothing is counted here: every event was counted when it
was stored (`drip.reports.counting`), and removing it takes nothing back, so the funnel
reads the same before and after. A month that still holds an event not yet applied
(`processed_at IS NULL`) is kept and named: its effect (a suppression) must happen first.

Never removed here: contacts and their status, enrollments, deliveries, the audit log,
the counts. `drip contacts export` shows the provider events of the retention period; older
ones are in the counts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from drip.models import ProviderEvent, ProviderEventId
from drip.retention.partitions import (
    is_partitioned,
    month_of,
    month_start,
    next_month,
    partitions,
)

#: `DRIP_EVENT_RETENTION`'s default, in days.
DEFAULT_RETENTION_DAYS = 180


@dataclass(frozen=True)
class MonthToPrune:
    """One month of raw events that a prune removes (or keeps, with the reason)."""

    month: date
    events: int
    partition: str | None
    kept_because: str | None = None

    def describe(self) -> str:
        """One line for `drip db prune`."""
        where = f"partition {self.partition}" if self.partition else "rows"
        line = f"provider events of {self.month:%Y-%m}: {self.events:,} ({where})"
        return f"{line}; kept: {self.kept_because}" if self.kept_because else line


@dataclass
class PrunePlan:
    """What a prune removes: months of raw events, and the seen ids received before `cutoff`."""

    cutoff: datetime
    months: list[MonthToPrune] = field(default_factory=list)
    event_ids: int = 0

    @property
    def events(self) -> int:
        """Raw events removed (months kept excluded)."""
        return sum(m.events for m in self.months if m.kept_because is None)


def plan_prune(session: Session, *, now: datetime, retention: timedelta) -> PrunePlan:
    """What `prune` would remove at `now`, without changing anything."""
    cutoff = now - retention
    plan = PrunePlan(cutoff=cutoff)
    partitioned = is_partitioned(session)
    tables = partitions(session) if partitioned else {}
    oldest = session.scalar(select(func.min(ProviderEvent.received_at)))
    months = {m for m in tables if month_start(next_month(m)) <= cutoff}
    if oldest is not None:
        month = month_of(oldest)
        while month_start(next_month(month)) <= cutoff:
            months.add(month)
            month = next_month(month)
    for month in sorted(months):
        lo, hi = month_start(month), month_start(next_month(month))
        in_month = (ProviderEvent.received_at >= lo, ProviderEvent.received_at < hi)
        events = session.scalar(select(func.count()).where(*in_month)) or 0
        waiting = session.scalar(
            select(func.count()).where(*in_month, ProviderEvent.processed_at.is_(None))
        )
        if not events and month not in tables:
            continue
        kept = f"{waiting:,} events not applied yet" if waiting else None
        plan.months.append(MonthToPrune(month, events, tables.get(month), kept))
        if kept is None:
            plan.event_ids += (
                session.scalar(
                    select(func.count()).where(
                        ProviderEventId.received_at >= lo, ProviderEventId.received_at < hi
                    )
                )
                or 0
            )
    return plan


def prune(session: Session, *, now: datetime, retention: timedelta) -> PrunePlan:
    """Remove the raw events of months older than `retention` (and their seen ids); return
    what was removed. Run inside a transaction."""
    plan = plan_prune(session, now=now, retention=retention)
    partitioned = is_partitioned(session)
    for item in plan.months:
        if item.kept_because is not None:
            continue
        lo, hi = month_start(item.month), month_start(next_month(item.month))
        if partitioned and item.partition is not None:
            session.execute(text(f"DROP TABLE {item.partition}"))
        session.execute(
            delete(ProviderEvent).where(
                ProviderEvent.received_at >= lo, ProviderEvent.received_at < hi
            )
        )
        session.execute(
            delete(ProviderEventId).where(
                ProviderEventId.received_at >= lo, ProviderEventId.received_at < hi
            )
        )
    return plan
