"""The scheduler's job for retention: on every recovery pass, the funnel's count deltas
folded (`drip.reports.counts`); at most once a day across all schedulers, partitions
created ahead and raw events older than the retention removed.

The last run is kept in `housekeeping_runs`; the row is locked for the run, so two
schedulers never run it together (the second finds it locked, or already run, and skips).
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import select

from drip.db import upsert_statement
from drip.dispatch.recovery import Recovery
from drip.models import HousekeepingRun
from drip.reports.counts import fold_deltas
from drip.retention.partitions import create_ahead, is_partitioned
from drip.retention.prune import prune

log = structlog.get_logger(__name__)

#: The job's name in `housekeeping_runs`.
NAME = "event_retention"

#: How often the job runs at most.
EVERY = timedelta(days=1)


def fold_delivery_counts(recovery: Recovery) -> int:
    """Move the deltas the triggers appended into `delivery_counts` (the funnel reads both,
    so this only keeps its read short); return how many keys changed."""
    with recovery.sessions() as session, session.begin():
        return fold_deltas(session)


def keep_event_retention(recovery: Recovery) -> dict[str, int]:
    """Every pass: fold the funnel's count deltas. Once a day: create the coming months'
    partitions, prune."""
    fold_delivery_counts(recovery)
    with recovery.sessions() as session, session.begin():
        session.execute(
            upsert_statement(session, HousekeepingRun)
            .values(name=NAME, ran_at=recovery.now - EVERY)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        locked = select(HousekeepingRun.ran_at).where(HousekeepingRun.name == NAME)
        if session.get_bind().dialect.name == "postgresql":
            locked = locked.with_for_update(skip_locked=True)
        last = session.scalar(locked)
        if last is None or recovery.now - last < EVERY:
            return {}
        created = create_ahead(session, now=recovery.now) if is_partitioned(session) else []
        plan = prune(session, now=recovery.now, retention=recovery.event_retention)
        session.get(HousekeepingRun, NAME).ran_at = recovery.now  # type: ignore[union-attr]
    log.info(
        "retention.kept",
        partitions_created=created,
        months_pruned=[f"{m.month:%Y-%m}" for m in plan.months if m.kept_because is None],
        events_pruned=plan.events,
    )
    return {}
