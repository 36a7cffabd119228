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
dropped. A person whose pending step is gone gets a new due time worked out in Python, so
for them SQL picks the contacts with at least `cap` emails on their line and reads those
lines (less the row that will be cancelled). `cap_opens` decides for all, so the rule has
one owner. It is a forecast of the first postponement: the knock-on of one postponed
email on the contact's later ones is not followed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, case, func, literal, select, union_all
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


def contact_line(now: datetime) -> Subquery:
    """Every contact's emails on one line: contact_id, at, id; those sent in the last day at
    their send times, the pending ones at their due times (now when overdue)."""
    going = case(
        (Delivery.due_at < literal(now, UTCDateTime()), literal(now, UTCDateTime())),
        else_=Delivery.due_at,
    )
    return union_all(
        select(Delivery.contact_id, Delivery.sent_at.label("at"), Delivery.id).where(
            Delivery.status == DeliveryStatus.SENT, Delivery.sent_at > now - CAP_WINDOW
        ),
        select(Delivery.contact_id, going.label("at"), Delivery.id).where(
            Delivery.status.in_(PENDING)
        ),
    ).subquery("line")


def crowded_rows(session: Session, *, cap: int, now: datetime) -> Subquery:
    """Pending rows with at least `cap` of their contact's emails in the day before them:
    delivery_id, at, before_1 .. before_cap (the nearest first)."""
    line = contact_line(now)
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


def read_lines(
    session: Session, contact_ids: Select[tuple[int]], *, now: datetime
) -> dict[int, list[tuple[datetime, int]]]:
    """The line (`contact_line`) of each contact that `contact_ids` selects: (at, row id)."""
    line = contact_line(now)
    found: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for contact_id, at, row_id in session.execute(
        select(line.c.contact_id, line.c.at, line.c.id).where(line.c.contact_id.in_(contact_ids))
    ):
        found[contact_id].append((at, row_id))
    return found


def held_until(
    line: list[tuple[datetime, int]], cap: int, at: datetime, *, cancelled: int | None
) -> datetime | None:
    """When the cap lets a new email due `at` go after the contact's `line` (less the row
    `cancelled`, which will not be sent), by the worker's rule; None: at `at`."""
    return cap_opens([t for t, row in line if row != cancelled and t <= at], cap, at)


def crowded_contacts(*, cap: int, now: datetime) -> Select[tuple[int]]:
    """The contacts with at least `cap` emails on their line: only they can be held back."""
    line = contact_line(now)
    return select(line.c.contact_id).group_by(line.c.contact_id).having(func.count() >= cap)


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
