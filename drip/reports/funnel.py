"""The funnel per step: scheduled, sent, delivered, opened, clicked, bounced, unsubscribed,
failed, with rates over sent; and the scheduler's lag. `drip stats`, `/admin`, `/metrics`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session, aliased

from drip.models import (
    PENDING,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    ProviderEvent,
)
from drip.sequences.catalog import SequenceCatalog

#: Provider events counted per step, once per delivery.
EVENT_COLUMNS = {
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
}

COLUMNS = (
    "scheduled",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "unsubscribed",
    "converted",
    "failed",
)


@dataclass
class StepFunnel:
    sequence: str
    step: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))

    def rate(self, column: str) -> float | None:
        sent = self.counts["sent"]
        return round(self.counts[column] / sent, 4) if sent else None

    def as_dict(self) -> dict[str, object]:
        rates = {f"{c}_rate": self.rate(c) for c in COLUMNS if c not in ("scheduled", "sent")}
        return {"sequence": self.sequence, "step": self.step, **self.counts, **rates}


@dataclass(frozen=True)
class Lag:
    seconds: float
    oldest_due_id: int | None
    oldest_due_at: datetime | None

    def as_dict(self) -> dict[str, object]:
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
    """Per (sequence, step), in file order, for deliveries created since `since`."""
    scope: list[ColumnElement[bool]] = [Delivery.resend.is_(False)]
    if since is not None:
        scope.append(Delivery.created_at >= since)
    if sequence is not None:
        scope.append(Delivery.sequence_id == sequence)
    table: dict[tuple[str, str], StepFunnel] = {}

    def row(seq: str, step: str) -> StepFunnel:
        return table.setdefault((seq, step), StepFunnel(seq, step))

    for seq, step, status, count in session.execute(
        select(Delivery.sequence_id, Delivery.step_id, Delivery.status, func.count())
        .where(*scope)
        .group_by(Delivery.sequence_id, Delivery.step_id, Delivery.status)
    ):
        target = row(seq, step).counts
        if status in PENDING:
            target["scheduled"] += count
        elif status is DeliveryStatus.SENT:
            target["sent"] += count
        elif status is DeliveryStatus.FAILED:
            target["failed"] += count
    for seq, step, event, count in session.execute(
        select(
            Delivery.sequence_id,
            Delivery.step_id,
            ProviderEvent.event,
            func.count(func.distinct(ProviderEvent.delivery_id)),
        )
        .join(ProviderEvent, ProviderEvent.delivery_id == Delivery.id)
        .where(*scope, ProviderEvent.event.in_(EVENT_COLUMNS))
        .group_by(Delivery.sequence_id, Delivery.step_id, ProviderEvent.event)
    ):
        row(seq, step).counts[EVENT_COLUMNS[event]] += count
    # An unsubscribe is counted against the last email its subscriber received.
    later = aliased(Delivery)
    last_sent = (
        ~select(later.id)
        .where(
            later.enrollment_id == Delivery.enrollment_id,
            later.status == DeliveryStatus.SENT,
            later.sent_at > Delivery.sent_at,
        )
        .exists()
    )
    for seq, step, count in session.execute(
        select(Delivery.sequence_id, Delivery.step_id, func.count())
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(
            *scope,
            Delivery.status == DeliveryStatus.SENT,
            last_sent,
            and_(Contact.status == ContactStatus.UNSUBSCRIBED),
        )
        .group_by(Delivery.sequence_id, Delivery.step_id)
    ):
        row(seq, step).counts["unsubscribed"] += count
    # A conversion too: against the last email of the run its goal ended.
    for seq, step, count in session.execute(
        select(Delivery.sequence_id, Delivery.step_id, func.count())
        .join(
            Enrollment,
            and_(Enrollment.id == Delivery.enrollment_id, Enrollment.run == Delivery.run),
        )
        .where(
            *scope,
            Delivery.status == DeliveryStatus.SENT,
            last_sent,
            Enrollment.status == EnrollmentStatus.CONVERTED,
        )
        .group_by(Delivery.sequence_id, Delivery.step_id)
    ):
        row(seq, step).counts["converted"] += count
    return sorted(table.values(), key=lambda f: _order(catalog, f))


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
