"""Record the subject variant a delivery is sent with (`drip.render.variants` chooses it).

The send path writes nothing before its provider call (on SQLite an early write would hold
the one write lock across it), so the variant is written as the send's guard transaction
commits, together with the row's outcome: one UPDATE per variant number of the batch,
issued from that transaction's `before_commit`. A row whose send is retried is written
again with the same variant: the choice is deterministic.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import event, update
from sqlalchemy.orm import Session, object_session

from drip.models import Contact, Delivery

#: Where a session keeps the variants it will write at commit: {delivery_id: variant}.
_PENDING = "drip.subject_variants"


def record_variant(contact: Contact, delivery: Delivery, variant: int) -> None:
    """Record `variant` on `delivery`: in the transaction that read `contact` (the send's
    guard) when there is one, at its commit; on the object itself in any case (the in-memory
    store's rows are these objects)."""
    delivery.subject_variant = variant
    session = object_session(contact)
    if session is None:
        return
    pending: dict[int, int] = session.info.setdefault(_PENDING, {})
    if not pending:
        event.listen(session, "before_commit", _write, once=True)
    pending[delivery.id] = variant


def _write(session: Session) -> None:
    pending: dict[int, int] = session.info.pop(_PENDING, {})
    by_variant: dict[int, list[int]] = defaultdict(list)
    for delivery_id, variant in pending.items():
        by_variant[variant].append(delivery_id)
    for variant, ids in sorted(by_variant.items()):
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids)).values(subject_variant=variant)
        )
