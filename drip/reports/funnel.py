"""The funnel per step: scheduled, sent, delivered, opened, clicked, human clicks, bounced,
unsubscribed, converted, failed, with rates over sent; and the scheduler's lag. `drip stats`,
`/admin`, `/metrics`.

Every step of every loaded sequence is listed, in file order, including steps nobody has
reached yet; steps since removed from a file follow their sequence's.

`opened` and `clicked` are the provider's events (SendGrid's open pixel and its own click
tracking). Opens are inflated by machines (Apple Mail Privacy Protection opens every email
it receives): `machine_opened` counts those SendGrid flags with `sg_machine_open`, and no
condition ever reads opens. `human_clicks` is drip's own tracking (`track_clicks: true`):
unique deliveries with a person's click on a `/l/` link, by the rule of
`drip.clicks.rule`; machine clicks are not counted. Per link: `link_funnel`.

The funnel scans neither `deliveries` nor `provider_events`: every column is read from
`delivery_counts` (plus the deltas not yet folded), which triggers keep in the
transaction of every change (`drip.reports.counting` owns the rules), per day the delivery
was created (UTC), so `since` counts whole days from its UTC day.
Only planned deliveries count (not resends). An unsubscribe is counted against the
enrolment's last sent planned email (latest `sent_at`, then highest id) while its contact
is unsubscribed: a contact who subscribes again, or is forgotten, leaves the column. A
conversion is counted against the last sent planned email of the run its goal ended,
while the enrolment is converted. A provider event counts once per delivery and name (its
first), when it is stored, and stays counted after its raw row is pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from drip.models import (
    PENDING,
    Delivery,
    DeliveryStatus,
    LinkClick,
)
from drip.reports.counting import (
    CONVERTED,
    EVENT_MEASURES,
    HUMAN_CLICK,
    MACHINE_OPENED,
    UNSUBSCRIBED,
)
from drip.reports.counts import read_counts
from drip.sequences.catalog import SequenceCatalog

#: Printed under every funnel: what the open counts are worth.
OPENS_NOTE = (
    "opened: SendGrid's open events, inflated by machine opens (Apple Mail Privacy"
    " Protection; {machine} flagged sg_machine_open); opens never drive conditions."
    " human clicks: drip's tracked links, people only."
)

#: The funnel's column of each measure kept in `delivery_counts` (`drip.reports.counting`);
#: skipped and cancelled deliveries are counted but not shown.
MEASURE_COLUMNS: dict[str, str] = {
    **{status.value: "scheduled" for status in PENDING},
    DeliveryStatus.SENT.value: "sent",
    DeliveryStatus.FAILED.value: "failed",
    UNSUBSCRIBED: "unsubscribed",
    CONVERTED: "converted",
    HUMAN_CLICK: "human_clicks",
    # Provider events, once per delivery: the measures are the columns' names.
    **{measure: measure for measure in EVENT_MEASURES.values()},
}

COLUMNS = (
    "scheduled",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "human_clicks",
    "bounced",
    "unsubscribed",
    "converted",
    "failed",
)


@dataclass
class StepFunnel:
    """One step's row of the funnel: its counts, and rates over sent."""

    sequence: str
    step: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    #: Of `opened`, the deliveries whose open SendGrid flagged as a machine's.
    machine_opened: int = 0

    def rate(self, column: str) -> float | None:
        """`column` over sent, to 4 places; None before anything was sent."""
        sent = self.counts["sent"]
        return round(self.counts[column] / sent, 4) if sent else None

    def as_dict(self) -> dict[str, object]:
        """The counts and rates, as `drip stats --json` prints them."""
        rates = {f"{c}_rate": self.rate(c) for c in COLUMNS if c not in ("scheduled", "sent")}
        return {
            "sequence": self.sequence,
            "step": self.step,
            **self.counts,
            "machine_opened": self.machine_opened,
            **rates,
        }


@dataclass(frozen=True)
class LinkLine:
    """One tracked link of one step: its unique human and machine clicks, over sent."""

    sequence: str
    step: str
    link_index: int
    url: str
    sent: int
    human_clicks: int
    machine_clicks: int

    @property
    def rate(self) -> float | None:
        """Unique human clicks over sent, to 4 places; None before anything was sent."""
        return round(self.human_clicks / self.sent, 4) if self.sent else None

    def as_dict(self) -> dict[str, object]:
        """The line as `drip stats --links --json` prints it."""
        return {
            "sequence": self.sequence,
            "step": self.step,
            "link": self.link_index,
            "url": self.url,
            "sent": self.sent,
            "human_clicks": self.human_clicks,
            "machine_clicks": self.machine_clicks,
            "click_rate": self.rate,
        }


@dataclass(frozen=True)
class Lag:
    """How late the scheduler is: the oldest due row nobody has claimed yet."""

    seconds: float
    oldest_due_id: int | None
    oldest_due_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        """The lag as JSON-ready values."""
        return {
            "lag_seconds": round(self.seconds, 3),
            "oldest_due_id": self.oldest_due_id,
            "oldest_due_at": self.oldest_due_at.isoformat() if self.oldest_due_at else None,
        }


def scheduler_lag(session: Session, *, now: datetime) -> Lag:
    """Now minus the oldest row that is due but not yet claimed (0 when none is waiting)."""
    row = session.execute(
        select(Delivery.id, Delivery.due_at)
        .where(Delivery.status == DeliveryStatus.SCHEDULED, Delivery.due_at <= now)
        .order_by(Delivery.due_at)
        .limit(1)
    ).first()
    if row is None:
        return Lag(0.0, None, None)
    return Lag(max((now - row[1]).total_seconds(), 0.0), row[0], row[1])


def funnel(
    session: Session,
    catalog: SequenceCatalog,
    *,
    since: datetime | None = None,
    sequence: str | None = None,
) -> list[StepFunnel]:
    """Per (sequence, step), in file order, for deliveries created since the UTC day of
    `since`: one read of the kept counts."""
    table: dict[tuple[str, str], StepFunnel] = {}

    def row(seq: str, step: str) -> StepFunnel:
        return table.setdefault((seq, step), StepFunnel(seq, step))

    for loaded in catalog:
        if sequence is None or loaded.definition.id == sequence:
            for step_def in loaded.definition.steps:
                row(loaded.definition.id, step_def.id)

    for (seq, step, measure), count in read_counts(session, since=since, sequence=sequence).items():
        column = MEASURE_COLUMNS.get(measure)
        if column is not None:
            row(seq, step).counts[column] += count
        elif measure == MACHINE_OPENED:
            row(seq, step).machine_opened += count
    return sorted(table.values(), key=lambda f: _order(catalog, f))


def link_funnel(
    session: Session,
    catalog: SequenceCatalog,
    *,
    since: datetime | None = None,
    sequence: str | None = None,
) -> list[LinkLine]:
    """Per tracked link of each step that has clicks: unique human and machine clicks, in
    file order of the steps and then link order."""
    scope: list[ColumnElement[bool]] = [Delivery.resend.is_(False)]
    if since is not None:
        scope.append(Delivery.created_at >= since)
    if sequence is not None:
        scope.append(Delivery.sequence_id == sequence)
    sent = {
        (seq, step): count
        for (seq, step, measure), count in read_counts(
            session, since=since, sequence=sequence
        ).items()
        if measure == DeliveryStatus.SENT
    }
    urls: dict[tuple[str, str, int], str] = {}
    counts: dict[tuple[str, str, int, bool], int] = {}
    for seq, step, index, human, url, count in session.execute(
        select(
            Delivery.sequence_id,
            Delivery.step_id,
            LinkClick.link_index,
            LinkClick.human,
            func.max(LinkClick.url),
            func.count(),
        )
        .join(LinkClick, LinkClick.delivery_id == Delivery.id)
        .where(*scope)
        .group_by(Delivery.sequence_id, Delivery.step_id, LinkClick.link_index, LinkClick.human)
    ):
        urls.setdefault((seq, step, index), url)
        counts[(seq, step, index, bool(human))] = count
    lines = [
        LinkLine(
            seq,
            step,
            index,
            url,
            sent.get((seq, step), 0),
            counts.get((seq, step, index, True), 0),
            counts.get((seq, step, index, False), 0),
        )
        for (seq, step, index), url in urls.items()
    ]
    return sorted(
        lines,
        key=lambda line: (*_order(catalog, StepFunnel(line.sequence, line.step)), line.link_index),
    )


def _order(catalog: SequenceCatalog, item: StepFunnel) -> tuple[str, int, str]:
    if item.sequence in catalog:
        ids = [s.id for s in catalog.get(item.sequence).definition.steps]
        if item.step in ids:
            return (item.sequence, ids.index(item.step), item.step)
    return (item.sequence, 10_000, item.step)


def recent_failures(session: Session, *, limit: int = 20) -> list[dict[str, object]]:
    """The latest failed deliveries with their reasons."""
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.status == DeliveryStatus.FAILED)
        .order_by(Delivery.updated_at.desc())
        .limit(limit)
    )
    return [
        {
            "id": d.id,
            "sequence": d.sequence_id,
            "step": d.step_id,
            "at": d.updated_at.isoformat(),
            "reason": d.error,
        }
        for d in rows
    ]
