"""The send path's statements on `deliveries`: claim a batch, finish a batch.

Both are one conditional UPDATE for the whole batch, so a batch of 25 costs what one
delivery used to; each row still moves on its own condition, so a row another worker or
the scheduler moved first is left alone and reported as not ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from drip.models import Delivery, DeliveryStatus
from drip.schedule.store import lease


def claim(
    session: Session, delivery_ids: Sequence[int], *, now: datetime, send_lease: float
) -> list[Delivery]:
    """`queued -> sending` for those of `delivery_ids` still queued, in the order given."""
    claimed = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)), Delivery.status == DeliveryStatus.QUEUED)
        .values(
            status=DeliveryStatus.SENDING,
            attempts=Delivery.attempts + 1,
            lease_until=lease(now, send_lease),
            updated_at=now,
        )
        .returning(Delivery)
        .execution_options(synchronize_session=False)
    ).all()
    position = {delivery_id: n for n, delivery_id in enumerate(delivery_ids)}
    return sorted(claimed, key=lambda d: position[d.id])


def finish(
    session: Session, finishes: Mapping[int, Mapping[str, Any]], *, now: datetime
) -> set[int]:
    """Move each row out of `sending` with its own values (`status` and any other columns);
    return the ids that moved. A row missing from the answer was taken over (its lease ran
    out and the scheduler moved it), so its outcome is no longer this worker's to record.

    A column that only some rows give keeps its value in the others.
    """
    if not finishes:
        return set()
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
        .where(Delivery.id.in_(list(finishes)), Delivery.status == DeliveryStatus.SENDING)
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
        .where(table.c.id == rows.c.id, table.c.status == DeliveryStatus.SENDING.value)
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
