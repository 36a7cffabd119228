"""Inserting new delivery rows: many in one statement, and what the database refuses.

On PostgreSQL the rows travel as one array per column (`unnest`), so the statement's text
is the same for any number of rows; elsewhere each row goes in its own savepoint. A row the
one-planned-row indexes refuse (migration 0005, per run since 0008) is not inserted: it is
logged as an error and counted, and the caller's other work still commits.

The steps an import starts its subscribers past (`insert_passed`) go in a statement of
their own: a million of them (100,000 subscribers started at step 11) travel as four
arrays, with no ORM object and no id returned per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

import structlog
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    Table,
    bindparam,
    false,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from drip.db import is_postgresql, unnest_params, unnest_rows, utcnow
from drip.deliveries.transitions import BEFORE_IMPORT_START, Move, transition
from drip.metrics import PLANS_REFUSED
from drip.models import Delivery

log = structlog.get_logger(__name__)


def insert_deliveries(session: Session, deliveries: list[Delivery]) -> list[Delivery]:
    """Insert new rows in one statement, give each its id, and return those inserted.

    A row the unique indexes refuse (a second pending or sent planned row of a step, which
    would be a second email) is not inserted, keeps no id, and is logged as an error; the
    caller's other work, such as recording a send, still commits.
    """
    if not deliveries:
        return []
    if not is_postgresql(session.get_bind()):  # type: ignore[arg-type]
        return [d for d in deliveries if _insert_one(session, d)]
    inserted = session.execute(
        _insert_from_arrays(),
        unnest_params(
            {
                "enrollment_id": [d.enrollment_id for d in deliveries],
                "contact_id": [d.contact_id for d in deliveries],
                "sequence_id": [d.sequence_id for d in deliveries],
                "step_id": [d.step_id for d in deliveries],
                "resend_number": [d.resend_number for d in deliveries],
                "run": [d.run for d in deliveries],
                "status": [d.status.value for d in deliveries],
                "due_at": [d.due_at for d in deliveries],
                "lease_until": [d.lease_until for d in deliveries],
            }
        )
        | {"now": utcnow()},
    ).all()
    ids = {(e, s, n): i for i, e, s, n in inserted}
    for delivery in deliveries:
        key = (delivery.enrollment_id, delivery.step_id, delivery.resend_number)
        if key in ids:
            delivery.id = ids[key]
        else:
            _refused(delivery)
    return [d for d in deliveries if d.id is not None]


def _insert_one(session: Session, delivery: Delivery) -> bool:
    """Insert one row in a savepoint (databases without arrays); False when refused."""
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:
        session.expunge(delivery) if delivery in session else None
        _refused(delivery)
        return False
    return True


def _refused(delivery: Delivery) -> None:
    delivery.id = None  # type: ignore[assignment]
    PLANS_REFUSED.inc()
    log.error(
        "planning.refused_duplicate",
        enrollment_id=delivery.enrollment_id,
        step=delivery.step_id,
        status=delivery.status.value,
    )


#: The columns a new row takes from its planner (PostgreSQL array types).
_PLANNED_COLUMNS: dict[str, TypeEngine[Any]] = {
    "enrollment_id": BigInteger(),
    "contact_id": BigInteger(),
    "sequence_id": String(),
    "step_id": String(),
    "resend_number": Integer(),
    "run": Integer(),
    "status": String(),
    "due_at": DateTime(timezone=True),
    "lease_until": DateTime(timezone=True),
}


@cache
def _insert_from_arrays() -> Any:
    """INSERT ... SELECT FROM unnest(...) RETURNING the ids: built once, any number of rows.
    (On the table, not the entity: a Core statement with parameters, not an ORM bulk insert.)"""
    table: Table = Delivery.__table__  # type: ignore[assignment]
    rows = unnest_rows(_PLANNED_COLUMNS)
    now = bindparam("now", type_=DateTime(timezone=True))
    return (
        postgresql.insert(table)
        .from_select(
            [*_PLANNED_COLUMNS, "resend", "attempts", "created_at", "updated_at"],
            select(*rows.c, false(), literal(0), now, now),
        )
        .on_conflict_do_nothing()
        .returning(table.c.id, table.c.enrollment_id, table.c.step_id, table.c.resend_number)
    )


class PassedStep(NamedTuple):
    """A step a new imported enrolment starts past, and when it counts as passed."""

    enrollment_id: int
    contact_id: int
    step_id: str
    passed_at: datetime


def passed_values(sequence_id: str, run: int) -> dict[str, Any]:
    """What every passed step's row holds besides its own columns: `skipped` by the move
    `before_import_start` (never sent, yet received by the progress rule), its reason in
    `error`, row number 0 of `run`, on the planned line."""
    return {
        "sequence_id": sequence_id,
        "run": run,
        "resend_number": 0,
        "resend": False,
        "attempts": 0,
        "status": transition(Move.BEFORE_IMPORT_START).target,
        "error": BEFORE_IMPORT_START,
    }


def passed_delivery(step: PassedStep, *, sequence_id: str, run: int) -> Delivery:
    """The row that records one passed step, as an entity."""
    return Delivery(
        enrollment_id=step.enrollment_id,
        contact_id=step.contact_id,
        step_id=step.step_id,
        due_at=step.passed_at,
        **passed_values(sequence_id, run),
    )


def insert_passed(
    session: Session, steps: Sequence[PassedStep], *, sequence_id: str, run: int, now: datetime
) -> None:
    """Record, in the caller's transaction, the steps new enrolments start past: one row
    each (`passed_values`), due when it was passed. One statement over four arrays on
    PostgreSQL, returning nothing; elsewhere the rows go through `insert_deliveries`."""
    if not steps:
        return
    if not is_postgresql(session.get_bind()):  # type: ignore[arg-type]
        insert_deliveries(
            session, [passed_delivery(s, sequence_id=sequence_id, run=run) for s in steps]
        )
        return
    values = passed_values(sequence_id, run) | {"now": now}
    values["status"] = values["status"].value
    columns = dict(zip(_PASSED_COLUMNS, map(list, zip(*steps, strict=True)), strict=True))
    session.execute(_insert_passed_from_arrays(), unnest_params(columns) | values)


#: The columns of a passed step's row that differ between rows (PostgreSQL array types),
#: in `PassedStep`'s order.
_PASSED_COLUMNS: dict[str, TypeEngine[Any]] = {
    "enrollment_id": BigInteger(),
    "contact_id": BigInteger(),
    "step_id": String(),
    "due_at": DateTime(timezone=True),
}


@cache
def _insert_passed_from_arrays() -> Any:
    """INSERT ... SELECT FROM unnest(...) of passed steps, the shared values bound once."""
    table: Table = Delivery.__table__  # type: ignore[assignment]
    rows = unnest_rows(_PASSED_COLUMNS)
    shared = {
        name: bindparam(name, type_=table.c[name].type)
        for name in passed_values("", 0)
        if name != "status"
    }
    shared["status"] = bindparam("status", type_=String())
    now = bindparam("now", type_=DateTime(timezone=True))
    return (
        postgresql.insert(table)
        .from_select(
            [*_PASSED_COLUMNS, *shared, "created_at", "updated_at"],
            select(*rows.c, *shared.values(), now, now),
        )
        .on_conflict_do_nothing()
    )
