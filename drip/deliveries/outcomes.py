"""Recording how claimed rows ended, and the one rule for what follows each.

`record_outcomes` is the only way a row leaves `sending` for good, for the worker and for
the scheduler's settlement alike: one conditional UPDATE for the batch, then a plan for
each row whose end was recorded and whose end moves the line on (`follow_up`). A row
someone else finished first plans nothing here, so a send settled twice plans once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from drip.deliveries.finish import finish_rows
from drip.deliveries.planning import FollowUp, plan_many
from drip.deliveries.progress import on_the_line
from drip.deliveries.transitions import Move, transition
from drip.models import Contact, Delivery, Enrollment, EnrollmentStatus
from drip.sequences.definition import Sequence as SequenceFile
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Ended:
    """How one claimed row ended: the move, the columns to set with it, when, and the
    facts that decide what follows (None where unknown: nothing follows then)."""

    delivery: Delivery
    move: Move
    at: datetime
    values: Mapping[str, object] = field(default_factory=dict)
    enrollment: Enrollment | None = None
    contact: Contact | None = None
    sequence: SequenceFile | None = None


@dataclass
class Recorded:
    """Which ends were recorded, and the id of each next row due at once, to enqueue."""

    ids: set[int] = field(default_factory=set)
    next_due: dict[int, int] = field(default_factory=dict)


def follow_up(ended: Ended) -> FollowUp | None:
    """What an ended row plans next, if anything: the one rule.

    Only a row on the planned line moves the line (never a resend or a confirmation).
    A send moves it while the enrollment is active and the contact subscribed; a step
    skipped as too late moves it too (its delay counting from the skip), one whose `when:`
    was false moves it with the delay counting from the last email sent, and a row whose
    step left the file plans the next step from the last send.
    """
    delivery, enrollment, contact, sequence = (
        ended.delivery,
        ended.enrollment,
        ended.contact,
        ended.sequence,
    )
    if enrollment is None or contact is None or sequence is None:
        return None
    if not on_the_line(resend=delivery.resend, step_id=delivery.step_id):
        return None
    if ended.move in (Move.ACCEPTED, Move.SETTLED_FROM_EVENT, Move.REPORTED_SENT):
        if enrollment.status is not EnrollmentStatus.ACTIVE or not contact.is_subscribed:
            return None
        return FollowUp(enrollment, contact, sequence, delivery.step_id, ended.at)
    if ended.move is Move.TOO_LATE:
        return FollowUp(enrollment, contact, sequence, delivery.step_id, ended.at)
    if ended.move is Move.CONDITION_FALSE:
        # Passed over, not sent: the next delay still counts from the last email sent.
        return FollowUp(enrollment, contact, sequence, delivery.step_id)
    if ended.move is Move.STEP_REMOVED:
        return FollowUp(enrollment, contact, sequence)
    return None


#: The ends that mean the provider took the email: `email.sent` for webhook receivers.
SENT_MOVES = frozenset({Move.ACCEPTED, Move.SETTLED_FROM_EVENT})


def _report_sent(session: Session, recorded: Sequence[Ended], *, now: datetime) -> None:
    """`email.sent` for each recorded row the provider took, in one outbox statement."""
    sent = [
        Event(
            EventType.EMAIL_SENT,
            e.delivery.contact_id,
            e.at,
            {
                "delivery_id": e.delivery.id,
                "sequence": e.delivery.sequence_id,
                "step": e.delivery.step_id,
            },
        )
        for e in recorded
        if e.move in SENT_MOVES
    ]
    emit(session, sent, now=now)


def record_outcomes(
    session: Session, ended: Sequence[Ended], *, now: datetime, queue_lease: float
) -> Recorded:
    """Move each row out of `sending` as its end says, in one UPDATE, then plan what
    follows those recorded, in one read and one INSERT; rows sent are told to webhook
    receivers (`email.sent`) in one more INSERT, which writes nothing when none listens."""
    finishes = {e.delivery.id: {"status": transition(e.move).target, **e.values} for e in ended}
    recorded = Recorded(ids=finish_rows(session, finishes, now=now))
    for delivery_id in finishes.keys() - recorded.ids:
        # The lease ran out mid-call and the scheduler took the row over: it plans.
        log.warning("deliveries.end_not_recorded", delivery_id=delivery_id)
    _report_sent(session, [e for e in ended if e.delivery.id in recorded.ids], now=now)
    requests = [
        (e.delivery.id, request)
        for e in ended
        if e.delivery.id in recorded.ids and (request := follow_up(e)) is not None
    ]
    following = plan_many(
        session, [request for _, request in requests], now=now, queue_lease=queue_lease
    )
    for (delivery_id, _), nxt in zip(requests, following, strict=True):
        if nxt is not None:
            recorded.next_due[delivery_id] = nxt
    return recorded
