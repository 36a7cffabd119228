"""Which of the next emails the daily cap (DRIP_MAX_EMAILS_PER_DAY) would postpone: `plan`.

The worker decides at send time with `planner.cap_opens`: a contact's emails sent in the day
before the send fill the cap, and a step over it waits until the oldest of them is a day
old, fitted into its window. `plan` asks the same question of each person's next email,
with the contact's emails across all sequences laid on one line: those sent in the last day
at their send times, and those pending (scheduled, queued, sending) at their due times, or
now when overdue, as the worker would send them. An email is checked against the `cap`
emails before it on that line (ties in row order).

SQL only narrows the people down: a window function gives each pending row the `cap`
emails before it, and rows whose `cap`-th earlier email is more than a day before it are
dropped. `cap_opens` decides for the rest, so the rule has one owner. It is a forecast of
the first postponement: the knock-on of one postponed email on the contact's later ones
is not followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, case, func, literal, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from drip.deliveries.transitions import PENDING
from drip.models import Delivery, DeliveryStatus
from drip.models.base import UTCDateTime
from drip.schedule.planner import CAP_WINDOW, cap_opens

#: Extra room in SQL's day (SQLite's date arithmetic rounds): cap_opens decides exactly.
_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class Crowded:
    """A pending row whose contact has `cap` emails before it: when it goes (`at`) and the
    times of those emails, for `cap_opens`."""

    delivery_id: int
    at: datetime
    before: tuple[datetime, ...]

    def opens(self, cap: int) -> datetime | None:
        """When the cap lets it go (None: at `at`), by the worker's rule."""
        return cap_opens(self.before, cap, self.at)


def crowded_rows(session: Session, *, cap: int, now: datetime) -> Subquery:
    """Pending rows with at least `cap` of their contact's emails in the day before them:
    delivery_id, at, before_1 .. before_cap (the nearest first)."""
    going = case(
        (Delivery.due_at < literal(now, UTCDateTime()), literal(now, UTCDateTime())),
        else_=Delivery.due_at,
    )
    line = union_all(
        select(Delivery.contact_id, Delivery.sent_at.label("at"), Delivery.id).where(
            Delivery.status == DeliveryStatus.SENT, Delivery.sent_at > now - CAP_WINDOW
        ),
        select(Delivery.contact_id, going.label("at"), Delivery.id).where(
            Delivery.status.in_(PENDING)
        ),
    ).subquery("line")
    befores = [
        func.lag(line.c.at, k, type_=UTCDateTime())
        .over(partition_by=line.c.contact_id, order_by=(line.c.at, line.c.id))
        .label(f"before_{k}")
        for k in range(1, cap + 1)
    ]
    ranked = select(line.c.id.label("delivery_id"), line.c.at, *befores).subquery("ranked")
    oldest = ranked.c[f"before_{cap}"]
    return (
        select(ranked)
        .where(oldest.is_not(None), _within_a_day(session, oldest, ranked.c.at))
        .subquery("crowded")
    )


def read_crowded(row: Row[Any], cap: int) -> Crowded:
    """A `Crowded` from a row holding `crowded_rows`' columns."""
    values = row._mapping
    return Crowded(
        values["delivery_id"],
        values["at"],
        tuple(values[f"before_{k}"] for k in range(1, cap + 1)),
    )


def _within_a_day(
    session: Session, earlier: ColumnElement[datetime], later: ColumnElement[datetime]
) -> ColumnElement[bool]:
    """`earlier` less than a day (`CAP_WINDOW`, with slack) before `later`, on either database."""
    span = CAP_WINDOW + _SLACK
    if session.get_bind().dialect.name == "sqlite":
        return func.julianday(earlier) > func.julianday(later) - span.total_seconds() / 86400
    return earlier > later - literal(span)
