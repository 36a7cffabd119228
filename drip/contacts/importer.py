"""Writing an import (`drip contacts import`): checked rows in batches, one transaction each.

Per batch of `BATCH_SIZE` rows, a handful of statements whatever the batch holds: one
multi-row insert of the new contacts (`ON CONFLICT DO NOTHING` on the address hash), one
read of the known ones, locked for update as a signup locks them, one read of their
enrolments in the sequence, one multi-row insert of the enrolments and one of their first
rows: each step an enrolment starts past (`--start-at`, `--skip-elapsed`), recorded as
skipped (`before_import_start`: never sent, yet passed, so no later edit of the file sends
it), and its first step.

The consent rule is the signup's own (`drip.signup.service.consent_for`), with one
difference: an import never sends a confirmation email, so where the rule asks for one the
row is refused, counted by the reason (unsubscribed, suppressed, forgotten, left the
sequence). A known address is never changed by an import, and never re-activated.

Idempotent: a second run finds every contact known and enrolled and changes nothing ("already
enrolled"): the rows of an enrolment are written with it, in the same transaction, or not
at all. The first step of each enrolment is inserted `scheduled`, even when due now: the
scheduler claims due rows in its batches, so an import of 100,000 rows enqueues nothing
itself. New contacts get the events other apps posted for their address before
drip knew it (`attach_events_many`), as a signup does.

A dry run runs the very same statements and rolls each batch back: its counts are the ones
a real run would give at that moment, and nothing is written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    String,
    Table,
    Text,
    bindparam,
    cast,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeEngine

from drip.contacts.identity import email_hash
from drip.contacts.imports import ImportRow, Refusal, Start, plan_start
from drip.db import unnest_params, unnest_rows, upsert_for
from drip.deliveries.inserts import PassedStep, insert_deliveries, insert_passed
from drip.deliveries.transitions import Move, transition
from drip.events.contact_store import attach_events_many
from drip.models import Contact, ContactStatus, Delivery, Enrollment, EnrollmentStatus
from drip.models.base import Base
from drip.models.contact import new_public_id
from drip.sequences.definition import Sequence
from drip.signup.service import Consent, consent_for

#: Rows written per transaction.
BATCH_SIZE = 1000
#: The run a new enrolment starts with (`Enrollment.run`); its rows carry it.
FIRST_RUN = 0
#: The reason an address that left the sequence is refused.
LEFT = "left the sequence"
#: The reason a row is refused when the sequence asks every subscriber to confirm.
NEEDS_CONFIRMATION = "needs confirmation"


@dataclass
class ImportSummary:
    """What an import did (or, dry, would do): rows enrolled, rows enrolled with every step
    already elapsed (`completed`), rows already enrolled, and each refusal."""

    rows: int = 0
    imported: int = 0
    completed: int = 0
    already_enrolled: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    dry_run: bool = False

    def refused_by_reason(self) -> dict[str, int]:
        """How many rows each reason refused, the most frequent first."""
        return dict(Counter(r.reason for r in self.refusals).most_common())

    def add(self, other: ImportSummary) -> None:
        """Count `other`'s rows in this summary."""
        self.rows += other.rows
        self.imported += other.imported
        self.completed += other.completed
        self.already_enrolled += other.already_enrolled
        self.refusals.extend(other.refusals)

    def as_dict(self) -> dict[str, Any]:
        """The summary for `--json`."""
        return {
            "dry_run": self.dry_run,
            "rows": self.rows,
            "imported": self.imported,
            "completed": self.completed,
            "already_enrolled": self.already_enrolled,
            "refused": len(self.refusals),
            "refused_by_reason": self.refused_by_reason(),
            "refusals": [r.as_dict() for r in sorted(self.refusals, key=lambda r: r.row)],
        }


def import_contacts(
    sessions: sessionmaker[Session],
    rows: list[ImportRow],
    *,
    sequence: Sequence,
    now: datetime,
    start_at: str | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import checked rows in batches, one transaction each (rolled back when `dry_run`);
    `progress` is called with each batch's row count once it is done."""
    summary = ImportSummary(dry_run=dry_run)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        with sessions() as session:
            outcome = import_batch(session, batch, sequence=sequence, now=now, start_at=start_at)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        summary.add(outcome)
        if progress is not None:
            progress(len(batch))
    return summary


def import_batch(
    session: Session,
    rows: list[ImportRow],
    *,
    sequence: Sequence,
    now: datetime,
    start_at: str | None = None,
) -> ImportSummary:
    """Import rows of distinct addresses in the caller's transaction."""
    outcome = ImportSummary(rows=len(rows))
    by_hash = {email_hash(row.email): row for row in rows}
    dialect = session.get_bind().dialect.name
    fresh = _insert_contacts(session, dialect, by_hash, now=now)
    attach_events_many(session, fresh)
    to_enroll: list[tuple[int, ImportRow]] = []
    # A new contact is active, with no enrolment: the rule decides the same for all of them.
    new_contact = Contact(status=ContactStatus.ACTIVE)
    if consent_for(new_contact, None, double_opt_in=sequence.double_opt_in) is Consent.ENROLL:
        to_enroll += [(contact_id, by_hash[hashed]) for hashed, contact_id in fresh.items()]
    else:
        outcome.refusals += [_refusal(by_hash[h], NEEDS_CONFIRMATION) for h in fresh]
    known = [hashed for hashed in by_hash if hashed not in fresh]
    for contact, status in _known_contacts(session, known, sequence.id):
        row = by_hash[contact.email_hash]
        consent = consent_for(contact, status, double_opt_in=sequence.double_opt_in)
        if consent is Consent.ENROLL:
            to_enroll.append((contact.id, row))
        elif consent is Consent.ALREADY:
            outcome.already_enrolled += 1
        else:
            outcome.refusals.append(_refusal(row, _why_not(contact, status, sequence)))
    _enroll(
        session, dialect, to_enroll, sequence=sequence, now=now, start_at=start_at, into=outcome
    )
    return outcome


def _insert_contacts(
    session: Session, dialect: str, by_hash: dict[str, ImportRow], *, now: datetime
) -> dict[str, int]:
    """Insert the addresses drip does not know; their hashes and new ids."""
    rows = by_hash.values()
    columns: dict[str, list[Any]] = {
        "public_id": [new_public_id() for _ in rows],
        "email": [row.email for row in rows],
        "email_hash": list(by_hash),
        "first_name": [row.first_name for row in rows],
        "timezone": [row.timezone for row in rows],
        "attributes": [json.dumps(row.attributes) for row in rows],
        "source": [row.source for row in rows],
        "consent_at": [row.consent_at for row in rows],
    }
    inserted = _insert_new(session, dialect, "contacts", columns, now=now)
    return {hashed: contact_id for hashed, contact_id in inserted}


@dataclass(frozen=True)
class _NewRows:
    """How an import inserts into one table: the columns bound per row (PostgreSQL array
    types), the values every row shares, the columns set to the import's clock, and the
    two columns returned for each row inserted."""

    bound: dict[str, TypeEngine[Any]]
    constant: dict[str, Any]
    clock: tuple[str, ...]
    returned: tuple[str, str]


_NEW_ROWS = {
    "contacts": _NewRows(
        bound={
            "public_id": String(),
            "email": String(),
            "email_hash": String(),
            "first_name": String(),
            "timezone": String(),
            "attributes": Text(),  # JSON text, cast on insert
            "source": String(),
            "consent_at": DateTime(timezone=True),
        },
        constant={"status": ContactStatus.ACTIVE.value},
        clock=("created_at", "updated_at"),
        returned=("email_hash", "id"),
    ),
    "enrollments": _NewRows(
        bound={
            "contact_id": BigInteger(),
            "sequence_id": String(),
            "status": String(),
            "ended_at": DateTime(timezone=True),
        },
        constant={"run": FIRST_RUN},
        clock=("enrolled_at",),
        returned=("contact_id", "id"),
    ),
}


def _insert_new(
    session: Session, dialect: str, table_name: str, columns: dict[str, list[Any]], *, now: datetime
) -> list[tuple[Any, Any]]:
    """Insert rows given column by column, skipping any a unique key refuses; the returned
    pair of each row inserted. PostgreSQL: one statement over arrays (`unnest`), its text
    the same whatever the batch holds; elsewhere a multi-row insert."""
    if dialect == "postgresql":
        result = session.execute(
            _insert_from_arrays(table_name), unnest_params(columns) | {"now": now}
        )
        return [(a, b) for a, b in result]
    spec = _NEW_ROWS[table_name]
    table: Table = Base.metadata.tables[table_name]
    rows = [
        dict(zip(columns, values, strict=True)) | spec.constant | dict.fromkeys(spec.clock, now)
        for values in zip(*columns.values(), strict=True)
    ]
    for row in rows:
        if "attributes" in row:
            row["attributes"] = json.loads(row["attributes"])
    statement = (
        upsert_for(dialect, table)
        .on_conflict_do_nothing()
        .returning(*(table.c[name] for name in spec.returned))
    )
    return [(a, b) for a, b in session.execute(statement, rows)]


@cache
def _insert_from_arrays(table_name: str) -> Any:
    """INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING, built once."""
    spec = _NEW_ROWS[table_name]
    table: Table = Base.metadata.tables[table_name]
    rows = unnest_rows(spec.bound)
    selected: dict[str, Any] = {
        name: cast(rows.c[name], JSON) if name == "attributes" else rows.c[name]
        for name in spec.bound
    }
    selected |= {name: literal(value) for name, value in spec.constant.items()}
    selected |= dict.fromkeys(spec.clock, bindparam("now", type_=DateTime(timezone=True)))
    return (
        postgresql.insert(table)
        .from_select(list(selected), select(*selected.values()))
        .on_conflict_do_nothing()
        .returning(*(table.c[name] for name in spec.returned))
    )


def _known_contacts(
    session: Session, hashes: list[str], sequence_id: str
) -> Iterable[tuple[Contact, EnrollmentStatus | None]]:
    """The known contacts of `hashes`, locked for update (in id order, so two imports never
    deadlock), each with the status of its enrolment in the sequence, if any."""
    if not hashes:
        return []
    contacts = session.scalars(
        select(Contact).where(Contact.email_hash.in_(hashes)).order_by(Contact.id).with_for_update()
    ).all()
    statuses = dict(
        session.execute(
            select(Enrollment.contact_id, Enrollment.status).where(
                Enrollment.sequence_id == sequence_id,
                Enrollment.contact_id.in_([c.id for c in contacts]),
            )
        ).all()
    )
    return [(contact, statuses.get(contact.id)) for contact in contacts]


def _why_not(contact: Contact, status: EnrollmentStatus | None, sequence: Sequence) -> str:
    """The reason the consent rule refuses a known contact, as the summary counts it."""
    if contact.status is not ContactStatus.ACTIVE:
        return contact.status.value
    if status is EnrollmentStatus.CANCELLED:
        return LEFT
    return NEEDS_CONFIRMATION


_DETAILS = {
    ContactStatus.UNSUBSCRIBED.value: "the address unsubscribed",
    ContactStatus.SUPPRESSED.value: "the address is suppressed (a bounce, a complaint, a block)",
    ContactStatus.FORGOTTEN.value: "the address was forgotten on request",
    LEFT: "the address left this sequence",
    NEEDS_CONFIRMATION: "the sequence asks subscribers to confirm",
}


def _refusal(row: ImportRow, reason: str) -> Refusal:
    detail = _DETAILS[reason] + ": only its owner's own signup and confirmation can bring it in"
    return Refusal(row.row, "email", reason, detail)


def _enroll(
    session: Session,
    dialect: str,
    contacts: list[tuple[int, ImportRow]],
    *,
    sequence: Sequence,
    now: datetime,
    start_at: str | None,
    into: ImportSummary,
) -> None:
    """Enrol each contact, record the steps it starts past (`insert_passed`) and insert its
    first step (`first_row`); count what was done."""
    if not contacts:
        return
    starts = {
        contact_id: plan_start(
            sequence,
            timezone=row.timezone,
            now=now,
            start_at=start_at,
            signed_up_at=row.signed_up_at,
        )
        for contact_id, row in contacts
    }
    # Every step already elapsed: enrolled, and done at once.
    done = {contact_id for contact_id, start in starts.items() if start.step is None}
    columns: dict[str, list[Any]] = {
        "contact_id": list(starts),
        "sequence_id": [sequence.id] * len(starts),
        "status": [
            (EnrollmentStatus.COMPLETED if c in done else EnrollmentStatus.ACTIVE).value
            for c in starts
        ],
        "ended_at": [now if c in done else None for c in starts],
    }
    enrolled = dict(_insert_new(session, dialect, "enrollments", columns, now=now))
    # Enrolled meanwhile by a signup: the rows the insert left alone are already enrolled.
    into.already_enrolled += len(contacts) - len(enrolled)
    # The steps each starts past first, so their ids come before its first step's.
    passed = [
        PassedStep(enrollment_id, contact_id, step.id, passed_at)
        for contact_id, enrollment_id in enrolled.items()
        for step, passed_at in starts[contact_id].passed
    ]
    insert_passed(session, passed, sequence_id=sequence.id, run=FIRST_RUN, now=now)
    firsts = [
        first
        for contact_id, enrollment_id in enrolled.items()
        if (first := first_row(enrollment_id, contact_id, sequence.id, starts[contact_id]))
    ]
    into.completed += len(enrolled.keys() & done)
    into.imported += len(insert_deliveries(session, firsts))


def first_row(
    enrollment_id: int, contact_id: int, sequence_id: str, start: Start
) -> Delivery | None:
    """The first step of a new imported enrolment (its first run), scheduled even when due
    now (the scheduler claims it); None when every step has elapsed."""
    if start.step is None or start.due is None:
        return None
    return Delivery(
        enrollment_id=enrollment_id,
        contact_id=contact_id,
        sequence_id=sequence_id,
        step_id=start.step.id,
        run=FIRST_RUN,
        resend_number=0,
        status=transition(Move.PLAN_LATER).target,
        due_at=start.due,
    )
