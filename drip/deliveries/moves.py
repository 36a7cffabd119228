"""The conditional UPDATEs that move delivery rows, one function per move of the table.

Each UPDATE names the statuses the row must be in (the move's sources) and sets the
move's target, both read from `transitions`; a row someone else moved first is simply
not in the answer. On PostgreSQL the claims select with `FOR UPDATE SKIP LOCKED`, so any
number of schedulers split the due rows between them instead of waiting on each other;
the partial index on `due_at WHERE status = 'scheduled'` makes the claim's cost grow with
the due rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Select, and_, any_, func, or_, select, update
from sqlalchemy.orm import Session

from drip.deliveries.leases import lease
from drip.deliveries.transitions import BEFORE_IMPORT_START, Move, transition
from drip.models import Delivery, DeliveryStatus, ProviderEvent, SequenceState


def _moving(move: Move, *where: ColumnElement[bool]) -> Any:
    """UPDATE deliveries for `move`: only rows in one of its sources, set to its target."""
    step = transition(move)
    return (
        update(Delivery)
        .where(*where, Delivery.status.in_(step.sources))
        .values(status=step.target)
        .execution_options(synchronize_session=False)
    )


def _picked(session: Session, chosen: Select[Any]) -> ColumnElement[bool]:
    """`Delivery.id` among the rows `chosen` picks (a SELECT of ids with a LIMIT and FOR
    UPDATE SKIP LOCKED), picked once for the whole statement.

    On PostgreSQL `id IN (subquery)` may run the subquery again for each row it checks, and
    each run then skips the rows this statement already moved and picks the next ones: the
    LIMIT no longer bounds the statement (a retry of 2,001 rows moved all of them in one
    chunk of 500). `= ANY(ARRAY(subquery))` is computed once, before the update.
    """
    if session.get_bind().dialect.name == "postgresql":
        return Delivery.id == any_(func.array(chosen.scalar_subquery()))
    return Delivery.id.in_(chosen.scalar_subquery())


def _rowcount(session: Session, statement: Any) -> int:
    """Run an UPDATE; how many rows it moved."""
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return int(result.rowcount or 0)


def claim_due(session: Session, *, now: datetime, limit: int, queue_lease: float) -> list[int]:
    """`claim_due`: mark up to `limit` due rows of unpaused sequences queued (leased) and
    return their ids, oldest due first."""
    due = (
        select(Delivery.id)
        .where(
            Delivery.status.in_(transition(Move.CLAIM_DUE).sources),
            Delivery.due_at <= now,
            Delivery.sequence_id.not_in(select(SequenceState.sequence_id)),
        )
        .order_by(Delivery.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = _moving(Move.CLAIM_DUE, _picked(session, due))
    return list(
        session.scalars(
            statement.values(lease_until=lease(now, queue_lease), updated_at=now).returning(
                Delivery.id
            )
        )
    )


def renew_lost(session: Session, *, now: datetime, limit: int, queue_lease: float) -> list[int]:
    """`renew_lease`: queued rows whose lease ran out (their message was lost with Redis or
    a killed worker) are leased again; returns their ids to enqueue again."""
    expired = (
        select(Delivery.id)
        .where(
            Delivery.status.in_(transition(Move.RENEW_LEASE).sources), Delivery.lease_until < now
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = _moving(Move.RENEW_LEASE, _picked(session, expired))
    return list(
        session.scalars(
            statement.values(lease_until=lease(now, queue_lease), updated_at=now).returning(
                Delivery.id
            )
        )
    )


def hand_back(session: Session, delivery_ids: Sequence[int], *, now: datetime) -> int:
    """`hand_back`: queued rows whose message Redis refused go back to the schedule, for the
    next tick; returns how many moved."""
    return _rowcount(
        session,
        _moving(Move.HAND_BACK, Delivery.id.in_(list(delivery_ids))).values(
            lease_until=None, updated_at=now
        ),
    )


def claim_to_send(
    session: Session, delivery_ids: Sequence[int], *, now: datetime, send_lease: float
) -> list[Delivery]:
    """`claim_send`: `queued -> sending` for those of `delivery_ids` still queued, in the
    order given, each counting one attempt. Committed before any provider call."""
    claimed = session.scalars(
        _moving(Move.CLAIM_SEND, Delivery.id.in_(list(delivery_ids)))
        .values(attempts=Delivery.attempts + 1, lease_until=lease(now, send_lease), updated_at=now)
        .returning(Delivery)
    ).all()
    position = {delivery_id: n for n, delivery_id in enumerate(delivery_ids)}
    return sorted(claimed, key=lambda d: position[d.id])


def retry_later(
    session: Session,
    delivery_id: int,
    *,
    now: datetime,
    lease_until: datetime,
    attempts: int,
    error: str,
) -> bool:
    """`retry_later`: back to `queued` after a transient failure, leased past its retry so
    the scheduler does not enqueue it meanwhile; False when the row was taken over."""
    return (
        _rowcount(
            session,
            _moving(Move.RETRY_LATER, Delivery.id == delivery_id).values(
                error=error, updated_at=now, lease_until=lease_until, attempts=attempts
            ),
        )
        > 0
    )


def await_event(
    session: Session, delivery_id: int, *, now: datetime, wait: float, error: str
) -> bool:
    """`await_event`: the answer was lost after the request went out, so the row stays in
    `sending`, leased for `wait` seconds while the provider's `processed` event may settle
    it; False when the row was taken over."""
    return (
        _rowcount(
            session,
            _moving(Move.AWAIT_EVENT, Delivery.id == delivery_id).values(
                lease_until=lease(now, wait), error=error, updated_at=now
            ),
        )
        > 0
    )


def expired_sending(
    session: Session, *, now: datetime, limit: int
) -> list[tuple[int, datetime | None]]:
    """Rows in `sending` that need the scheduler, locked, with any `processed` time: those
    past their lease (a worker died mid-send, or a lost answer's wait is over), and those
    the provider already reported as processed."""
    processed = (ProviderEvent.delivery_id == Delivery.id, ProviderEvent.event == "processed")
    processed_at = select(ProviderEvent.occurred_at).where(*processed).limit(1).scalar_subquery()
    has_event = select(ProviderEvent.id).where(*processed).exists()
    rows = session.execute(
        select(Delivery.id, processed_at)
        .where(
            Delivery.status.in_(transition(Move.RESEND_AMBIGUOUS).sources),
            or_(Delivery.lease_until < now, has_event),
        )
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    ).all()
    return [(row[0], row[1]) for row in rows]


def resend_ambiguous(
    session: Session, delivery_ids: Sequence[int], *, now: datetime, queue_lease: float
) -> list[int]:
    """`resend_ambiguous`: rows whose lost answer no event explained in time are queued
    again (DRIP_AMBIGUOUS_POLICY=resend); returns the ids that moved, to enqueue."""
    return list(
        session.scalars(
            _moving(Move.RESEND_AMBIGUOUS, Delivery.id.in_(list(delivery_ids)))
            .values(lease_until=lease(now, queue_lease), updated_at=now)
            .returning(Delivery.id)
        )
    )


def reported_processed() -> ColumnElement[bool]:
    """Whether the provider reported the row's email processed: it was sent, whatever the
    row says."""
    return (
        select(ProviderEvent.id)
        .where(ProviderEvent.delivery_id == Delivery.id, ProviderEvent.event == "processed")
        .exists()
    )


def passed_by_import() -> ColumnElement[bool]:
    """Whether the row is a step an import started its subscriber past
    (`before_import_start`): never due, never to be sent."""
    return and_(  # never NULL, so its negation keeps every other row
        Delivery.status == transition(Move.BEFORE_IMPORT_START).target,
        Delivery.error.is_not_distinct_from(BEFORE_IMPORT_START),
    )


def never_retried() -> ColumnElement[bool]:
    """The rows `operator_retry` never moves, whatever the operator's filter: those the
    provider reported processed (they were sent) and the steps an import passed."""
    return or_(reported_processed(), passed_by_import())


def cancel_pending(
    session: Session,
    contact_id: int,
    *,
    reason: str,
    now: datetime,
    sequence_id: str | None = None,
) -> int:
    """`cancel_pending`: cancel the contact's scheduled and queued rows (of one sequence, or
    all); returns how many. A row in `sending` is left to its worker, whose send-time check
    runs under the contact lock the caller holds."""
    where = [Delivery.contact_id == contact_id]
    if sequence_id is not None:
        where.append(Delivery.sequence_id == sequence_id)
    return _rowcount(
        session,
        _moving(Move.CANCEL_PENDING, *where).values(lease_until=None, updated_at=now, error=reason),
    )


def operator_retry(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    *,
    now: datetime,
    queue_lease: float,
    limit: int,
) -> list[int]:
    """`operator_retry`: up to `limit` failed or skipped rows matching `where` are queued
    again, due now, their attempts started afresh; returns the ids that moved.

    A failed row is where its enrollment stopped, so it stays on the planned line and its
    send plans the next step. A skipped row's next step was planned when it was skipped,
    so it goes again as a resend: off the line, planning nothing. A row the provider has
    reported processed (its answer was lost, it failed for review, and the event came
    later) was sent: it is never retried, and neither is a step an import started its
    subscriber past (`passed_by_import`), which would send the series' start again.
    """
    chunk = (
        select(Delivery.id)
        .where(
            *where,
            Delivery.status.in_(transition(Move.OPERATOR_RETRY).sources),
            ~never_retried(),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(
        session.scalars(
            _moving(Move.OPERATOR_RETRY, _picked(session, chunk), *where, ~never_retried())
            .values(
                resend=or_(Delivery.resend, Delivery.status == DeliveryStatus.SKIPPED),
                attempts=0,
                lease_until=lease(now, queue_lease),
                due_at=now,
                updated_at=now,
                error=None,
            )
            .returning(Delivery.id)
        )
    )
