"""Counting closed days of provider events into `provider_event_counts`, and reading the
funnel's event counts from those counts plus the raw rows not yet counted.

What is counted: rows marked `first_of_kind` (a delivery's first event of a name) and
`first_machine_open` (as the event `machine_open`), of planned deliveries (not resends),
per day the delivery was created, sequence, step and event. Each (delivery, event) has one
such row, so counts taken over different ranges never overlap, and their sum equals the
distinct count over all raw rows. Every closed day (by `received_at`, UTC) not yet counted
is counted in one pass, in the transaction that records those days in
`provider_event_days`; the days counted form a prefix, so "not yet counted" is
`received_at >= watermark()`: at most a day or two of raw rows once the daily job runs.

An event arriving more than `DRIP_EVENT_RETENTION` after its delivery's first of that name
finds no earlier row and is counted again; SendGrid's events come within days.
With `since`, counted days are read whole from the day of `since` (the raw part is exact).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, func, insert, literal_column, select, true
from sqlalchemy.orm import Session

from drip.db import upsert_statement
from drip.models import Delivery, EventCount, EventDay, ProviderEvent

#: A day is counted this long after it ends: a transaction that stamped `received_at`
#: just before midnight has committed by then.
GRACE = timedelta(hours=1)

#: The pseudo-event name under which first machine opens are counted.
MACHINE_OPEN = "machine_open"

#: A (sequence, step, event) count, as the funnel reads it.
StepEventCounts = Counter[tuple[str, str, str]]


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def watermark(session: Session) -> datetime | None:
    """The start of the first day not yet counted; None before any day was counted."""
    last = session.scalar(select(func.max(EventDay.day)))
    return _start(last) + timedelta(days=1) if last else None


def closed_days(session: Session, *, now: datetime) -> list[date]:
    """The days not yet counted that have ended (plus the grace), oldest first."""
    mark = watermark(session)
    if mark is None:
        oldest = session.scalar(select(func.min(ProviderEvent.received_at)))
        if oldest is None:
            return []
        mark = _start(oldest.astimezone(UTC).date())
    days = []
    while mark + timedelta(days=1) + GRACE <= now:
        days.append(mark.date())
        mark += timedelta(days=1)
    return days


def aggregate_closed_days(session: Session, *, now: datetime) -> list[date]:
    """Count every closed day not yet counted, in one pass; return the days counted."""
    days = closed_days(session, now=now)
    if not days:
        return []
    lo, hi = _start(days[0]), _start(days[-1]) + timedelta(days=1)
    day = _day(session, Delivery.created_at).label("day")
    in_range = (
        ProviderEvent.received_at >= lo,
        ProviderEvent.received_at < hi,
        Delivery.resend.is_(False),
    )
    kinds: tuple[tuple[Any, ...], ...] = (
        (ProviderEvent.event, ProviderEvent.first_of_kind.is_(True)),
        (literal_column(f"'{MACHINE_OPEN}'"), ProviderEvent.first_machine_open.is_(True)),
    )
    counts: Counter[tuple[date, str, str, str]] = Counter()
    for name, marked in kinds:
        rows = session.execute(
            select(
                day,
                Delivery.sequence_id,
                Delivery.step_id,
                name.label("event"),
                func.count(func.distinct(ProviderEvent.delivery_id)),
            )
            .join(Delivery, Delivery.id == ProviderEvent.delivery_id)
            .where(*in_range, marked)
            .group_by(day, Delivery.sequence_id, Delivery.step_id, *_named(name))
        )
        for when, seq, step, event, count in rows:
            counts[(_as_date(when), seq, step, event)] += count
    _add(session, counts)
    session.execute(insert(EventDay), [{"day": d, "counted_at": now} for d in days])
    return days


def _add(session: Session, counts: Counter[tuple[date, str, str, str]]) -> None:
    for (day, seq, step, event), count in counts.items():
        statement = upsert_statement(session, EventCount).values(
            day=day, sequence_id=seq, step_id=step, event=event, deliveries=count
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["day", "sequence_id", "step_id", "event"],
                set_={"deliveries": EventCount.deliveries + statement.excluded.deliveries},
            )
        )


def step_event_counts(
    session: Session,
    *,
    scope: Iterable[ColumnElement[bool]],
    events: Iterable[str],
    since: datetime | None = None,
    sequence: str | None = None,
) -> StepEventCounts:
    """Distinct deliveries per (sequence, step, event) among `events` (and `machine_open`):
    the counted months from `provider_event_counts`, the rest from raw rows of deliveries
    within `scope` (the funnel's conditions on `Delivery`)."""
    wanted = [*events, MACHINE_OPEN]
    totals: StepEventCounts = Counter()
    kept = select(
        EventCount.sequence_id,
        EventCount.step_id,
        EventCount.event,
        func.sum(EventCount.deliveries),
    ).where(EventCount.event.in_(wanted))
    if since is not None:
        kept = kept.where(EventCount.day >= since.date())
    if sequence is not None:
        kept = kept.where(EventCount.sequence_id == sequence)
    group = (EventCount.sequence_id, EventCount.step_id, EventCount.event)
    for seq, step, event, count in session.execute(kept.group_by(*group)):
        totals[(seq, step, event)] += int(count)
    mark = watermark(session)
    raw: list[ColumnElement[bool]] = [*scope]
    if mark is not None:
        raw.append(ProviderEvent.received_at >= mark)
    kinds: tuple[tuple[Any, ...], ...] = (
        (
            ProviderEvent.event,
            ProviderEvent.first_of_kind.is_(True),
            ProviderEvent.event.in_(wanted),
        ),
        (literal_column(f"'{MACHINE_OPEN}'"), ProviderEvent.first_machine_open.is_(True), true()),
    )
    for name, marked, named in kinds:
        for seq, step, event, count in session.execute(
            select(
                Delivery.sequence_id,
                Delivery.step_id,
                name,
                func.count(func.distinct(ProviderEvent.delivery_id)),
            )
            .join(ProviderEvent, ProviderEvent.delivery_id == Delivery.id)
            .where(*raw, marked, named)
            .group_by(Delivery.sequence_id, Delivery.step_id, *_named(name))
        ):
            totals[(seq, step, event)] += count
    return totals


def _named(name: Any) -> tuple[Any, ...]:
    # A constant name is not grouped by (PostgreSQL reads some constants as column numbers).
    return (name,) if name is ProviderEvent.event else ()


def _day(session: Session, column: ColumnElement[datetime] | object) -> ColumnElement[date]:
    # The UTC day of a timestamp: PostgreSQL's own date() would follow the session's zone.
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
