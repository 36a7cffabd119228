"""Recovering sends left in `sending`: the scheduler's job for the send stage.

A row stays in `sending` when its worker died mid-send or its provider answer was lost.
A `processed` event naming its `delivery_id` settles it as sent, through the same
`record_outcomes` as a worker's send, so what follows is planned by the same rule (a
resend or a confirmation plans nothing). Without an event, once its lease is over,
DRIP_AMBIGUOUS_POLICY decides: send it again, or fail it for an operator's review.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select

from drip.config import AmbiguousPolicy
from drip.deliveries.moves import expired_sending, resend_ambiguous
from drip.deliveries.outcomes import Ended, record_outcomes
from drip.deliveries.transitions import Move
from drip.dispatch.recovery import Recovery
from drip.models import Contact, Delivery, Enrollment

log = structlog.get_logger(__name__)

#: Why a row failed for review.
REVIEW_REASON = (
    "outcome unknown: the worker stopped mid-send and the provider reported no processed "
    "event; review before resending"
)


def settle_sending(recovery: Recovery) -> dict[str, int]:
    """Settle rows left in `sending`: sent from a `processed` event, else by the policy."""
    now = recovery.now
    with recovery.sessions() as session, session.begin():
        found = dict(expired_sending(session, now=now, limit=recovery.batch_size))
        if not found:
            return {}
        rows = session.execute(
            select(Delivery, Enrollment, Contact)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.id.in_(list(found)))
        ).all()
        ended: list[Ended] = []
        unexplained: list[int] = []
        for delivery, enrollment, contact in rows:
            processed_at = found[delivery.id]
            if processed_at is not None:
                known = delivery.sequence_id in recovery.catalog
                loaded = recovery.catalog.get(delivery.sequence_id) if known else None
                ended.append(
                    Ended(
                        delivery,
                        Move.SETTLED_FROM_EVENT,
                        processed_at,
                        {"sent_at": processed_at, "error": None},
                        enrollment,
                        contact,
                        loaded.definition if loaded else None,
                    )
                )
                log.info("scheduler.settled_from_event", delivery_id=delivery.id)
            elif recovery.ambiguous_policy is AmbiguousPolicy.REVIEW:
                ended.append(Ended(delivery, Move.REVIEW_AMBIGUOUS, now, {"error": REVIEW_REASON}))
            else:
                unexplained.append(delivery.id)
        recorded = record_outcomes(session, ended, now=now, queue_lease=recovery.queue_lease)
        resent = resend_ambiguous(session, unexplained, now=now, queue_lease=recovery.queue_lease)
        for delivery_id in resent:
            log.warning("scheduler.ambiguous_resend", delivery_id=delivery_id)
    recovery.enqueue_committed([*recorded.next_due.values(), *resent])
    settled = [e for e in ended if e.delivery.id in recorded.ids]
    return {
        "resolved_sent": sum(e.move is Move.SETTLED_FROM_EVENT for e in settled),
        "marked_for_review": sum(e.move is Move.REVIEW_AMBIGUOUS for e in settled),
        "resent": len(resent),
    }
