"""An import that starts its subscribers past step 1 (`--start-at`, `--skip-elapsed`), on
real PostgreSQL: the steps before the start are recorded as passed (skipped,
`before_import_start`), so when the start step later leaves the file the worker and
`drip sequences plan` go on after it, never back to step 1; nothing counts them as
scheduled or sent, `drip retry` leaves them alone, a second run and a dry run write
nothing, and a later run of the enrolment starts afresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from drip.config import Settings
from drip.contacts.importer import ImportSummary, import_contacts
from drip.contacts.imports import parse_rows
from drip.contacts.privacy import forget_contact
from drip.db import transaction, utcnow
from drip.deliveries.planning import plan_first
from drip.deliveries.transitions import BEFORE_IMPORT_START
from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.operations.retry import RetryFilter, count_matching, requeue_chunks
from drip.reports.funnel import funnel
from drip.runtime import Runtime
from drip.schedule.impact import plan_changes
from drip.sequences.catalog import SequenceCatalog
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.integration.test_contact_import import (
    CONSENT,
    NOW,
    PACED,
    drip,
    import_json,
    snapshot,
    write_csv,
)

S = DeliveryStatus
#: paced.yaml without its step c.
WITHOUT_C = "".join(line for line in PACED.splitlines(keepends=True) if "{id: c," not in line)


@pytest.fixture
def sequences_dir(sequences_dir: Path) -> Path:
    """The test sequences, with paced (steps a, b, c, d) beside quick."""
    (sequences_dir / "paced.yaml").write_text(PACED)
    return sequences_dir


def import_at(runtime: Runtime, how: str) -> ImportSummary:
    """Import one subscriber into paced, at NOW, started at step c: by `--start-at c`, or
    by `--skip-elapsed` with a signup on Friday 5 June (a and b elapsed, c ahead)."""
    sequence = runtime.catalog.get("paced").definition
    if how == "start_at":
        parsed = parse_rows(f"email,consent_at\nada@example.com,{CONSENT}\n", now=NOW)
        return import_contacts(
            runtime.sessions, parsed.rows, sequence=sequence, now=NOW, start_at="c"
        )
    text = f"email,consent_at,joined\nada@example.com,{CONSENT},2026-06-05T10:00:00-04:00\n"
    parsed = parse_rows(text, now=NOW, signup_column="joined")
    return import_contacts(runtime.sessions, parsed.rows, sequence=sequence, now=NOW)


def rows(runtime: Runtime) -> list[tuple[str, DeliveryStatus, str | None]]:
    with runtime.sessions() as session:
        found = session.execute(
            select(Delivery.step_id, Delivery.status, Delivery.error).order_by(Delivery.id)
        ).all()
    return [(step, status, error) for step, status, error in found]


def remove_step_c(runtime: Runtime, settings: Settings) -> None:
    """The marketer deletes step c from paced.yaml; the processes reload, as on a deploy."""
    (settings.sequences_dir / "paced.yaml").write_text(WITHOUT_C)
    catalog = SequenceCatalog.load(
        settings.sequences_dir, postal_address=settings.resolved_postal_address()
    )
    runtime.catalog = runtime.sender.catalog = catalog


def run_due(runtime: Runtime) -> None:
    """One scheduler tick, then the sender on every row it enqueued (not what they plan)."""
    enqueued: list[int] = []
    scheduler = runtime.scheduler()
    scheduler.enqueue = enqueued.extend
    scheduler.tick()
    assert enqueued
    runtime.sender.send_batch(enqueued)


@pytest.mark.parametrize("how", ["start_at", "skip_elapsed"])
def test_a_start_step_removed_from_the_file_is_followed_by_the_next_not_by_step_one(
    runtime: Runtime, settings: Settings, fake_sendgrid: FakeSendGrid, how: str
) -> None:
    # Given a subscriber imported at step c: a and b recorded as passed, c scheduled
    summary = import_at(runtime, how)
    assert (summary.imported, summary.completed) == (1, 0)
    assert rows(runtime) == [
        ("a", S.SKIPPED, BEFORE_IMPORT_START),
        ("b", S.SKIPPED, BEFORE_IMPORT_START),
        ("c", S.SCHEDULED, None),
    ]
    # When the marketer removes step c from the file
    remove_step_c(runtime, settings)
    # Then `drip sequences plan` says they stand at b and get d next, not a
    with runtime.sessions() as session:
        (impact,) = [
            i
            for i in plan_changes(session, runtime.catalog, now=utcnow())
            if i.sequence_id == "paced"
        ]
    assert [(g.position, g.pending, g.next_step, g.change, g.people) for g in impact.groups] == [
        ("b", "c", "d", "re-planned: c is no longer in the file", 1)
    ]
    # And the worker cancels c and plans d: no email from the start of the series
    run_due(runtime)
    statuses = [(step, status) for step, status, _ in rows(runtime)]
    assert statuses[:3] == [("a", S.SKIPPED), ("b", S.SKIPPED), ("c", S.CANCELLED)]
    assert statuses[3][0] == "d"
    assert statuses[3][1] in (S.SCHEDULED, S.QUEUED)
    assert len(statuses) == 4
    assert fake_sendgrid.accepted == []


def test_passed_steps_count_as_neither_scheduled_nor_sent(runtime: Runtime) -> None:
    import_at(runtime, "start_at")
    with runtime.sessions() as session:
        lines = {f.step: f.counts for f in funnel(session, runtime.catalog, sequence="paced")}
    assert {step: (c["scheduled"], c["sent"], c["failed"]) for step, c in lines.items()} == {
        "a": (0, 0, 0),
        "b": (0, 0, 0),
        "c": (1, 0, 0),
        "d": (0, 0, 0),
    }


def import_at_c(runtime: Runtime, *emails: str) -> None:
    """Import `emails` into paced, started at step c (a and b passed)."""
    text = "email,consent_at\n" + "".join(f"{email},{CONSENT}\n" for email in emails)
    parsed = parse_rows(text, now=NOW)
    paced = runtime.catalog.get("paced").definition
    import_contacts(runtime.sessions, parsed.rows, sequence=paced, now=NOW, start_at="c")


def retry_skipped(runtime: Runtime) -> tuple[int, list[list[int]]]:
    """What `drip retry --status skipped --sequence paced` counts (--dry-run), then the
    chunks it re-queues."""
    selection = RetryFilter(status=S.SKIPPED, sequence="paced")
    with runtime.sessions() as session:
        counted = count_matching(session, selection)
    chunks = list(
        requeue_chunks(
            runtime.sessions,
            selection,
            reason="after the outage",
            operator="ops",
            now=utcnow(),
            queue_lease=30,
        )
    )
    return counted, chunks


def test_drip_retry_of_skipped_rows_never_sends_a_step_passed_by_an_import(
    runtime: Runtime,
) -> None:
    # Given two subscribers imported at c (a and b passed), whose c rows were then skipped:
    # one as too late, one with no note at all
    import_at_c(runtime, "ada@example.com", "bob@example.com")
    notes = ["2d late, more than max_lateness 1d", None]
    with transaction(runtime.sessions) as session:
        skipped = list(session.scalars(select(Delivery.id).where(Delivery.step_id == "c")))
        for delivery_id, note in zip(skipped, notes, strict=True):
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(status=S.SKIPPED, error=note)
            )
    # When an operator counts (as --dry-run does), then retries every skipped row of it
    counted, chunks = retry_skipped(runtime)
    # Then only the two c rows go again, as counted; every a and b stays passed
    assert counted == 2
    assert [sorted(chunk) for chunk in chunks] == [sorted(skipped)]
    assert sorted((step, status) for step, status, _ in rows(runtime)) == [
        ("a", S.SKIPPED),
        ("a", S.SKIPPED),
        ("b", S.SKIPPED),
        ("b", S.SKIPPED),
        ("c", S.QUEUED),
        ("c", S.QUEUED),
    ]


def test_a_later_run_of_the_enrolment_starts_at_step_one(runtime: Runtime) -> None:
    # Given an imported enrolment that finished its first run
    import_at(runtime, "start_at")
    with transaction(runtime.sessions) as session:
        enrollment = session.scalars(select(Enrollment)).one()
        enrollment.status = EnrollmentStatus.COMPLETED
    # When it starts again (reentry), the rows passed in run 0 are not its progress
    with transaction(runtime.sessions) as session:
        enrollment = session.scalars(select(Enrollment)).one()
        enrollment.run += 1
        enrollment.status = EnrollmentStatus.ACTIVE
        contact = session.get(Contact, enrollment.contact_id)
        plan_first(
            session,
            enrollment=enrollment,
            contact=contact,  # type: ignore[arg-type]
            sequence=runtime.catalog.get("paced").definition,
            now=utcnow(),
            queue_lease=30,
        )
    with runtime.sessions() as session:
        found = session.execute(
            select(
                Delivery.step_id, Delivery.run, Delivery.resend_number, Delivery.status
            ).order_by(Delivery.id)
        ).all()
    assert [tuple(r) for r in found][-1][:3] == ("a", 1, 1)  # step 1, of run 1, its 2nd row
    assert [tuple(r)[:2] for r in found[:3]] == [("a", 0), ("b", 0), ("c", 0)]


# -- through the command ----------------------------------------------------------------------
def test_a_second_run_and_a_dry_run_of_a_start_at_import_write_nothing(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    lines = ["email,consent_at"] + [f"reader{n}@example.com,{CONSENT}" for n in range(20)]
    path = write_csv(tmp_path / "list.csv", lines)
    before = snapshot(runtime)
    dry = import_json(settings, path, "--sequence", "paced", "--start-at", "c", "--dry-run")
    assert snapshot(runtime) == before
    first = import_json(settings, path, "--sequence", "paced", "--start-at", "c")
    assert {**dry, "dry_run": False} == first
    assert first["imported"] == 20
    written = snapshot(runtime)
    assert len(written["deliveries"]) == 60  # a and b passed, c scheduled, for each
    second = import_json(settings, path, "--sequence", "paced", "--start-at", "c")
    assert (second["imported"], second["already_enrolled"]) == (0, 20)
    assert snapshot(runtime) == written


def test_contacts_show_lists_the_passed_steps_first_with_their_reason(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "list.csv", ["email,consent_at", f"ada@example.com,{CONSENT}"])
    import_json(settings, path, "--sequence", "paced", "--start-at", "c")
    code, output = drip(settings, "contacts", "show", "ada@example.com", "--json")
    assert code == 0, output
    shown: dict[str, Any] = json.loads(output[output.index("{") :])
    assert [(d["step"], d["status"], d["note"], d["sent_at"]) for d in shown["deliveries"]] == [
        ("a", "skipped", BEFORE_IMPORT_START, None),
        ("b", "skipped", BEFORE_IMPORT_START, None),
        ("c", "scheduled", None, None),
    ]
    code, output = drip(settings, "contacts", "show", "ada@example.com")
    assert code == 0, output
    assert output.count(BEFORE_IMPORT_START) == 2


def test_a_forgotten_contact_keeps_the_steps_an_import_passed_out_of_a_retry(
    runtime: Runtime,
) -> None:
    # Given a subscriber imported at c (a and b passed), then forgotten: the error texts of
    # their rows are erased, as they may quote the address
    import_at_c(runtime, "ada@example.com")
    with transaction(runtime.sessions) as session:
        contact = session.scalars(select(Contact)).one()
        forget_contact(session, contact, now=utcnow())
    # When an operator retries every skipped row
    counted, chunks = retry_skipped(runtime)
    # Then the passed steps kept their mark, and none of them is queued
    assert (counted, chunks) == (0, [])
    passed = [(step, status, error) for step, status, error in rows(runtime) if step in "ab"]
    assert passed == [
        ("a", S.SKIPPED, BEFORE_IMPORT_START),
        ("b", S.SKIPPED, BEFORE_IMPORT_START),
    ]
