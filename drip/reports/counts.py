"""Reading and folding the funnel's counts (`delivery_counts` plus the deltas not yet folded).

The triggers of `drip.reports.counting` append every change to `delivery_count_deltas` in
the transaction of the change. `fold_deltas` moves the oldest of them (`FOLD_LIMIT` at
most) into `delivery_counts`: on PostgreSQL in one statement (`DELETE ... RETURNING` in a
CTE, then an upsert) over the rows it picked and locked once, skipping rows another fold
holds, so two folds never move the same row and a delta committed meanwhile stays for
the next fold. On SQLite (one writer at a time) the same oldest deltas are added, then
deleted, in the caller's transaction.

`read_counts` reads both tables in one statement, so a fold committing in between can
neither hide a delta nor show it twice: the funnel never waits for a fold.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import CursorResult, delete, func, select, text, union_all
from sqlalchemy.orm import Session

from drip.models import DeliveryCount, DeliveryCountDelta

#: A count per (sequence, step, measure).
MeasureCounts = Counter[tuple[str, str, str]]

#: Deltas folded per call at most, oldest first: a bulk load appends one per row, and a
#: recovery pass folding a million of them would hold its scheduler for seconds; the rest
#: wait for the next passes (the funnel reads them meanwhile).
FOLD_LIMIT = 100_000

_FOLD_POSTGRESQL = text(
    "WITH moved AS (DELETE FROM delivery_count_deltas WHERE id = ANY(ARRAY("
    "SELECT id FROM delivery_count_deltas ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED))"
    " RETURNING day, sequence_id, step_id, measure, n)"
    " INSERT INTO delivery_counts (day, sequence_id, step_id, measure, n)"
    " SELECT day, sequence_id, step_id, measure, sum(n) FROM moved GROUP BY 1, 2, 3, 4"
    " ON CONFLICT (day, sequence_id, step_id, measure)"
    " DO UPDATE SET n = delivery_counts.n + excluded.n"
)
_FOLD_SQLITE = (
    text(
        "INSERT INTO delivery_counts (day, sequence_id, step_id, measure, n)"
        " SELECT day, sequence_id, step_id, measure, sum(n) FROM delivery_count_deltas"
        " WHERE id <= :top GROUP BY 1, 2, 3, 4"
        " ON CONFLICT (day, sequence_id, step_id, measure)"
        " DO UPDATE SET n = delivery_counts.n + excluded.n"
    ),
    text("DELETE FROM delivery_count_deltas WHERE id <= :top"),
)


def fold_deltas(session: Session, *, limit: int = FOLD_LIMIT) -> int:
    """Move the oldest `limit` deltas at most into `delivery_counts`; return how many keys
    changed. Run inside a transaction."""
    if session.get_bind().dialect.name == "postgresql":
        result = session.execute(_FOLD_POSTGRESQL, {"limit": limit})
    else:
        oldest = select(DeliveryCountDelta.id).order_by(DeliveryCountDelta.id).limit(limit)
        top = session.scalar(select(func.max(oldest.subquery().c.id)))
        if top is None:
            return 0
        result = session.execute(_FOLD_SQLITE[0], {"top": top})
        session.execute(_FOLD_SQLITE[1], {"top": top})
    folded = result.rowcount if isinstance(result, CursorResult) else 0
    # A key that nets to zero (a row created, then deleted) need not be read again.
    session.execute(delete(DeliveryCount).where(DeliveryCount.n == 0))
    return int(folded or 0)


def read_counts(
    session: Session, *, since: datetime | None = None, sequence: str | None = None
) -> MeasureCounts:
    """Per (sequence, step, measure), for deliveries created on or after the UTC day of
    `since` (whole days) and of `sequence` when given: counts plus deltas, in one read."""
    parts = []
    for table in (DeliveryCount, DeliveryCountDelta):
        part = select(table.day, table.sequence_id, table.step_id, table.measure, table.n)
        if since is not None:
            part = part.where(table.day >= since.astimezone(UTC).date())
        if sequence is not None:
            part = part.where(table.sequence_id == sequence)
        parts.append(part)
    both = union_all(*parts).subquery()
    totals: MeasureCounts = Counter()
    for seq, step, measure, n in session.execute(
        select(both.c.sequence_id, both.c.step_id, both.c.measure, func.sum(both.c.n)).group_by(
            both.c.sequence_id, both.c.step_id, both.c.measure
        )
    ):
        if n:
            totals[(seq, step, measure)] += int(n)
    return totals
