"""Moving a batch of rows out of `sending`, each with its own status and values, in one
conditional UPDATE: a batch of 50 costs what one delivery used to. A row another worker
or the scheduler moved first is left alone and missing from the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    literal,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from drip.db import is_postgresql, unnest_params, unnest_rows
from drip.deliveries.transitions import FINISHING, transition
from drip.errors import IllegalMove
from drip.models import Delivery, DeliveryStatus

#: The statuses a finish may set, and the one it moves rows from.
_TARGETS = frozenset(transition(move).target for move in FINISHING)
_SOURCE = DeliveryStatus.SENDING


def finish_rows(
    session: Session, finishes: Mapping[int, Mapping[str, Any]], *, now: datetime
) -> set[int]:
    """Move each row out of `sending` with its own values (`status` and any other columns);
    return the ids that moved. A row missing from the answer was taken over (its lease ran
    out and the scheduler moved it), so its outcome is no longer this worker's to record.

    A column that only some rows give keeps its value in the others.
    """
    if not finishes:
        return set()
    wrong = {values.get("status") for values in finishes.values()} - _TARGETS
    if wrong:
        raise IllegalMove(f"a finish cannot set {sorted(map(str, wrong))}")
    columns = sorted({column for values in finishes.values() for column in values})
    if is_postgresql(session.get_bind()):  # type: ignore[arg-type]
        partial = frozenset(c for c in columns if any(c not in v for v in finishes.values()))
        params = unnest_params(
            {"id": list(finishes)}
            | {c: [_plain(values.get(c)) for values in finishes.values()] for c in columns}
        )
        statement = _finish_from_arrays(tuple(columns), partial)
        moved = session.scalars(statement, params | {"now": now}).all()
        return set(moved)
    moved = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(list(finishes)), Delivery.status == _SOURCE)
        .values(lease_until=None, updated_at=now, **_by_case(finishes, columns))
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    return set(moved)


#: The array type each finishing column travels in (PostgreSQL).
_ARRAY_TYPES: dict[str, TypeEngine[Any]] = {
    "status": String(),
    "error": Text(),
    "sent_at": DateTime(timezone=True),
    "provider_message_id": String(),
    "sequence_version": String(),
    "due_at": DateTime(timezone=True),
}


@cache
def _finish_from_arrays(columns: tuple[str, ...], partial: frozenset[str]) -> Any:
    """One row per delivery, joined from arrays; built once per set of columns, whatever the
    number of rows. A column in `partial` keeps its value where a row gives None."""
    table: Table = Delivery.__table__  # type: ignore[assignment]
    rows = unnest_rows({"id": BigInteger()} | {c: _ARRAY_TYPES[c] for c in columns})
    assignments: dict[str, Any] = {
        column: func.coalesce(rows.c[column], table.c[column])
        if column in partial
        else rows.c[column]
        for column in columns
    }
    return (
        update(table)
        .where(table.c.id == rows.c.id, table.c.status == _SOURCE.value)
        .values(
            lease_until=None,
            updated_at=bindparam("now", type_=DateTime(timezone=True)),
            **assignments,
        )
        .returning(table.c.id)
    )


def _by_case(finishes: Mapping[int, Mapping[str, Any]], columns: list[str]) -> dict[str, Any]:
    """Other databases: a CASE on the id per column whose value differs between rows."""
    assignments: dict[str, Any] = {}
    for column in columns:
        attribute = getattr(Delivery, column)
        given = {i: values[column] for i, values in finishes.items() if column in values}
        distinct = set(map(repr, given.values()))
        if len(given) == len(finishes) and len(distinct) == 1:
            assignments[column] = next(iter(given.values()))
        else:
            assignments[column] = case(
                *[(Delivery.id == i, literal(value, attribute.type)) for i, value in given.items()],
                else_=attribute,
            )
    return assignments


def _plain(value: Any) -> Any:
    """A value as its array holds it: an enum member as its string."""
    return value.value if isinstance(value, DeliveryStatus) else value
