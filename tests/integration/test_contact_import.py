"""`drip contacts import` on real PostgreSQL: every refusal reason, no address re-activated
and no confirmation sent, a second run changing nothing, a dry run writing nothing, the
first delivery's step and due time, the scheduler (not the import) enqueuing, and the time
5,000 rows take."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from drip.cli.main import app
from drip.config import Settings
from drip.contacts.importer import import_contacts
from drip.contacts.imports import parse_rows
from drip.contacts.lifecycle import stop_contact
from drip.contacts.privacy import find_contact, forget_contact
from drip.db import transaction, utcnow
from drip.deliveries.planning import plan_following
from drip.deliveries.transitions import BEFORE_IMPORT_START
from drip.events.contact_store import store_contact_event
from drip.models import (
    AuditEntry,
    Contact,
    ContactEvent,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)
from drip.runtime import Runtime, build_runtime
from drip.send.actor import SEND_QUEUE
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.unsubscribe.service import leave_sequence
from tests.integration.test_processes import settings_env

CONSENT = "2025-01-02T03:04:05Z"

#: Four steps 0s, 2d, 3d and 7d apart, on weekdays 09:00-17:00 New York time.
PACED = """\
id: paced
name: Paced
from: {email: hello@example.com, name: Test Sender}
timezone: America/New_York
send_window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
layout: layouts/base.html
download: {file: files/guide.txt, filename: Guide.txt}
steps:
  - {id: a, delay: 0s, subject: A, template: quick/welcome.html}
  - {id: b, delay: 2d, subject: B, template: quick/second.html}
  - {id: c, delay: 3d, subject: C, template: quick/third.html}
  - {id: d, delay: 7d, subject: D, template: quick/third.html}
"""


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """The test's runtime, with the paced sequence beside the quick one."""
    (settings.sequences_dir / "paced.yaml").write_text(PACED)
    rt = build_runtime(settings)
    yield rt
    rt.close()


def drip(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=settings_env(settings))
    return result.exit_code, result.output


def import_json(settings: Settings, path: Path, *args: str) -> dict[str, Any]:
    code, output = drip(settings, "contacts", "import", str(path), "--json", *args)
    assert code == 0, output
    answer: dict[str, Any] = json.loads(output[output.index("{") :])
    return answer


def signup(runtime: Runtime, email: str, sequence: str = "quick") -> None:
    with transaction(runtime.sessions) as session:
        enroll_contact(
            session,
            SignupRequest(email=email, sequence=sequence),
            catalog=runtime.catalog,
            default_sequence="quick",
            now=utcnow(),
            queue_lease=30,
        )


def snapshot(runtime: Runtime) -> dict[str, list[Any]]:
    """Every row of the tables an import writes, in id order."""
    tables = ("contacts", "enrollments", "deliveries", "contact_events")
    with runtime.sessions() as session:
        return {
            table: [tuple(r) for r in session.execute(text(f"SELECT * FROM {table} ORDER BY id"))]  # noqa: S608
            for table in tables
        }


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# -- refusals, and never re-activating ---------------------------------------------------------
def test_each_refusal_reason_and_no_address_brought_back(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    # Given addresses drip knows in every state that must not be enrolled by an import:
    # three stopped in another sequence (never in this one), one that left this one
    for email in ("unsub", "bounced", "gone"):
        signup(runtime, f"{email}@example.com", sequence="quick")
    for email in ("left", "in"):
        signup(runtime, f"{email}@example.com", sequence="paced")
    now = utcnow()
    with transaction(runtime.sessions) as session:
        unsub = find_contact(session, "unsub@example.com", lock=True)
        stop_contact(session, unsub, status=ContactStatus.UNSUBSCRIBED, reason="link", now=now)  # type: ignore[arg-type]
        bounced = find_contact(session, "bounced@example.com", lock=True)
        stop_contact(
            session, bounced, status=ContactStatus.SUPPRESSED, reason="bounce: 550", now=now
        )  # type: ignore[arg-type]
        forget_contact(session, find_contact(session, "gone@example.com", lock=True), now=now)  # type: ignore[arg-type]
        left = find_contact(session, "left@example.com")
        leave_sequence(session, left.public_id, "paced", now=now)  # type: ignore[union-attr]
    before = snapshot(runtime)
    path = write_csv(
        tmp_path / "list.csv",
        [
            "email,first_name,source,consent_at,attr.target_role",
            f"unsub@example.com,Una,old-list,{CONSENT},",  # 2
            f"bounced@example.com,Bo,old-list,{CONSENT},",  # 3
            f"gone@example.com,Gwen,old-list,{CONSENT},",  # 4
            f"left@example.com,Lee,old-list,{CONSENT},",  # 5
            f"in@example.com,Ines,old-list,{CONSENT},",  # 6
            f"new@example.com,Nia,old-list,{CONSENT},CFO",  # 7
            f"nobody,Ned,old-list,{CONSENT},",  # 8
            f"r2@example.com,R2D2,old-list,{CONSENT},",  # 9
            "late@example.com,Lou,old-list,,",  # 10
        ],
    )

    # When the file is imported into the paced sequence
    answer = import_json(settings, path, "--sequence", "paced")

    # Then one row is imported, one was in already, and each other row is refused by reason
    assert answer["imported"] == 1
    assert answer["already_enrolled"] == 1
    assert answer["refused_by_reason"] == {
        "unsubscribed": 1,
        "suppressed": 1,
        "forgotten": 1,
        "left the sequence": 1,
        "invalid email": 1,
        "invalid first_name": 1,
        "missing consent_at": 1,
    }
    assert [(r["row"], r["column"]) for r in answer["refusals"]] == [
        (2, "email"),
        (3, "email"),
        (4, "email"),
        (5, "email"),
        (8, "email"),
        (9, "first_name"),
        (10, "consent_at"),
    ]
    # and not one known contact, enrolment or delivery changed: no status back to active,
    # no address written back to the forgotten row, no confirmation email queued
    after = snapshot(runtime)
    for table in ("contacts", "enrollments", "deliveries"):
        assert after[table][: len(before[table])] == before[table], table
    with runtime.sessions() as session:
        new = session.scalars(select(Contact).where(Contact.email == "new@example.com")).one()
        assert (new.source, new.first_name, new.attributes) == (
            "old-list",
            "Nia",
            {"target_role": "CFO"},
        )
        assert new.consent_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        last = max(row[0] for row in before["deliveries"])
        added = session.scalars(select(Delivery).where(Delivery.id > last)).all()
        assert [(d.contact_id, d.step_id, d.status) for d in added] == [
            (new.id, "a", DeliveryStatus.SCHEDULED)
        ]
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_a_sequence_that_asks_for_confirmation_takes_no_import(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    paced = settings.sequences_dir / "paced.yaml"
    paced.write_text(PACED.replace("timezone:", "double_opt_in: true\ntimezone:", 1))
    path = write_csv(tmp_path / "l.csv", ["email,consent_at", f"a@example.com,{CONSENT}"])
    code, output = drip(settings, "contacts", "import", str(path), "--sequence", "paced")
    assert code == 2
    assert "double_opt_in" in output
    assert snapshot(runtime)["contacts"] == []


# -- idempotency and the dry run ---------------------------------------------------------------
def list_of(count: int) -> list[str]:
    return ["email,first_name,timezone,consent_at"] + [
        f"reader{n}@example.com,Reader,Europe/London,{CONSENT}" for n in range(count)
    ]


def test_a_second_run_changes_nothing(runtime: Runtime, settings: Settings, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "list.csv", [*list_of(30), "bad,Bad,,2025-01-01"])
    first = import_json(settings, path, "--sequence", "paced")
    assert (first["imported"], first["already_enrolled"], first["refused"]) == (30, 0, 1)
    written = snapshot(runtime)

    second = import_json(settings, path, "--sequence", "paced")

    assert (second["imported"], second["already_enrolled"], second["refused"]) == (0, 30, 1)
    assert snapshot(runtime) == written


def test_a_dry_run_counts_as_the_real_run_and_writes_nothing(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    signup(runtime, "reader0@example.com", sequence="paced")
    signup(runtime, "reader1@example.com", sequence="quick")
    with transaction(runtime.sessions) as session:
        one = find_contact(session, "reader1@example.com", lock=True)
        stop_contact(session, one, status=ContactStatus.UNSUBSCRIBED, reason="x", now=utcnow())  # type: ignore[arg-type]
    before = snapshot(runtime)
    path = write_csv(tmp_path / "list.csv", list_of(40))

    dry = import_json(settings, path, "--sequence", "paced", "--dry-run")

    assert snapshot(runtime) == before
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    real = import_json(settings, path, "--sequence", "paced")
    assert dry["dry_run"]
    assert not real["dry_run"]
    assert {**dry, "dry_run": False} == real
    assert (real["imported"], real["already_enrolled"], real["refused_by_reason"]) == (
        38,
        1,
        {"unsubscribed": 1},
    )


def test_the_summary_for_people_is_a_table(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "list.csv", [*list_of(3), f"nobody,N,,{CONSENT}"])
    code, output = drip(settings, "contacts", "import", str(path), "--sequence", "paced")
    assert code == 0, output
    assert "imported" in output
    assert "refused: invalid email" in output
    assert "row 5, email: invalid email" in output


# -- where each enrolment starts ---------------------------------------------------------------
NOW = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)  # Wednesday, 10:00 in New York (EDT)


def first_rows(runtime: Runtime) -> dict[str, tuple[str, datetime, DeliveryStatus]]:
    """Each contact's first step: its row that is not a step passed by the import."""
    with runtime.sessions() as session:
        rows = session.execute(
            select(Contact.email, Delivery.step_id, Delivery.due_at, Delivery.status)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.status != DeliveryStatus.SKIPPED)
        ).all()
    return {email: (step, due, status) for email, step, due, status in rows}


def passed_rows(runtime: Runtime) -> dict[str, list[tuple[str, datetime, str | None]]]:
    """Each contact's skipped rows, in id order: the steps the import started it past."""
    found: dict[str, list[tuple[str, datetime, str | None]]] = {}
    with runtime.sessions() as session:
        rows = session.execute(
            select(Contact.email, Delivery.step_id, Delivery.due_at, Delivery.error)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.status == DeliveryStatus.SKIPPED)
            .order_by(Delivery.id)
        ).all()
    for email, step, due, error in rows:
        found.setdefault(email, []).append((step, due, error))
    return found


def run_import(runtime: Runtime, text_: str, **options: Any) -> Any:
    signup_column = options.pop("signup_column", None)
    parsed = parse_rows(text_, now=NOW, signup_column=signup_column)
    sequence = runtime.catalog.get("paced").definition
    return import_contacts(runtime.sessions, parsed.rows, sequence=sequence, now=NOW, **options)


def test_by_default_step_one_is_scheduled_due_now_in_the_window(runtime: Runtime) -> None:
    run_import(
        runtime,
        "email,timezone,consent_at\n"
        f"ny@example.com,,{CONSENT}\n"  # the sequence's zone: Wednesday 10:00, open
        f"tokyo@example.com,Asia/Tokyo,{CONSENT}\n",  # 23:00 there: Thursday 09:00 JST
    )
    assert first_rows(runtime) == {
        "ny@example.com": ("a", NOW, DeliveryStatus.SCHEDULED),  # due now, yet not queued
        "tokyo@example.com": (
            "a",
            datetime(2026, 6, 11, 0, 0, tzinfo=UTC),
            DeliveryStatus.SCHEDULED,
        ),
    }


def test_start_at_plans_that_step_now_and_the_planner_goes_on_after_it(runtime: Runtime) -> None:
    run_import(runtime, f"email,consent_at\nada@example.com,{CONSENT}\n", start_at="c")
    assert first_rows(runtime) == {"ada@example.com": ("c", NOW, DeliveryStatus.SCHEDULED)}
    # a and b are recorded as passed at the import's time, never sent
    assert passed_rows(runtime) == {
        "ada@example.com": [("a", NOW, BEFORE_IMPORT_START), ("b", NOW, BEFORE_IMPORT_START)]
    }
    # When c is sent, the next step planned is d (7 days after the send), never a or b.
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.step_id == "c")
            .values(status=DeliveryStatus.SENT, sent_at=NOW)
        )
        enrollment = session.scalars(select(Enrollment)).one()
        contact = session.get(Contact, enrollment.contact_id)
        plan_following(
            session,
            enrollment=enrollment,
            contact=contact,  # type: ignore[arg-type]
            sequence=runtime.catalog.get("paced").definition,
            now=NOW,
            queue_lease=30,
            sent_step="c",
            sent_at=NOW,
        )
        planned = session.execute(
            select(Delivery.step_id, Delivery.due_at).where(
                Delivery.step_id != "c", Delivery.status != DeliveryStatus.SKIPPED
            )
        ).all()
    assert planned == [("d", NOW + timedelta(days=7))]  # Wednesday 17 June 10:00 EDT: open


def test_skip_elapsed_plans_the_first_step_still_ahead(runtime: Runtime) -> None:
    summary = run_import(
        runtime,
        "email,consent_at,joined\n"
        # Monday 1 June 10:00 EDT: a (1 June), b (3 June), c (Mon 8 June 09:00) are past;
        # d is due 7 days after c: Monday 15 June 09:00 EDT = 13:00 UTC.
        f"june@example.com,{CONSENT},2026-06-01T14:00:00Z\n"
        # Friday 5 June 10:00 EDT: a (5 June) is past; b (+2d) falls on Sunday 7 June, so
        # Monday 8 June 09:00 EDT, past too; c (+3d) is Thursday 11 June 09:00 EDT =
        # 13:00 UTC, ahead.
        f"friday@example.com,{CONSENT},2026-06-05T10:00:00-04:00\n"
        # 1 May: d was due in May; nothing is left to send.
        f"may@example.com,{CONSENT},2026-05-01T14:00:00Z\n",
        signup_column="joined",
    )
    assert first_rows(runtime) == {
        "june@example.com": (
            "d",
            datetime(2026, 6, 15, 13, 0, tzinfo=UTC),
            DeliveryStatus.SCHEDULED,
        ),
        "friday@example.com": (
            "c",
            datetime(2026, 6, 11, 13, 0, tzinfo=UTC),
            DeliveryStatus.SCHEDULED,
        ),
    }
    assert (summary.imported, summary.completed) == (2, 1)
    with runtime.sessions() as session:
        may = session.scalars(
            select(Enrollment).join(Contact).where(Contact.email == "may@example.com")
        ).one()
        assert may.status is EnrollmentStatus.COMPLETED
    # The elapsed steps are recorded as passed, each at the time it was due; everything
    # for the one who missed the whole series.
    passed = {
        email: [(step, due) for step, due, _ in rows]
        for email, rows in passed_rows(runtime).items()
    }
    assert passed["june@example.com"] == [
        ("a", datetime(2026, 6, 1, 14, 0, tzinfo=UTC)),
        ("b", datetime(2026, 6, 3, 14, 0, tzinfo=UTC)),
        ("c", datetime(2026, 6, 8, 13, 0, tzinfo=UTC)),
    ]
    assert [step for step, _ in passed["friday@example.com"]] == ["a", "b"]
    assert [step for step, _ in passed["may@example.com"]] == ["a", "b", "c", "d"]


# -- the scheduler sends, the import does not --------------------------------------------------
def test_the_import_enqueues_nothing_and_the_scheduler_claims_its_rows(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "list.csv", list_of(25))
    assert import_json(settings, path, "--sequence", "quick")["imported"] == 25
    client = runtime.broker.client  # type: ignore[attr-defined]
    assert not any(client.scan_iter(f"{settings.redis_namespace}*{SEND_QUEUE}*"))
    assert runtime.scheduler().tick().claimed == 25


def test_events_posted_before_the_import_are_attached(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    with transaction(runtime.sessions) as session:
        store_contact_event(
            session,
            client_id="evt-1",
            email="reader3@example.com",
            name="purchased",
            properties={},
            occurred_at=utcnow(),
            now=utcnow(),
        )
    import_json(settings, write_csv(tmp_path / "list.csv", list_of(5)), "--sequence", "paced")
    with runtime.sessions() as session:
        event = session.scalars(select(ContactEvent)).one()
        contact = find_contact(session, "reader3@example.com")
        assert contact is not None
        assert event.contact_id == contact.id


# -- speed -------------------------------------------------------------------------------------
def test_five_thousand_rows_timing(
    runtime: Runtime, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "list.csv", list_of(5000))
    started = time.perf_counter()
    answer = import_json(settings, path, "--sequence", "paced")
    elapsed = time.perf_counter() - started
    assert answer["imported"] == 5000
    with capsys.disabled():
        print(f"\n5,000 rows imported in {elapsed:.2f} s ({5000 / elapsed:,.0f} rows/s)")


def test_a_default_consent_time_fills_empty_cells_with_a_warning(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "list.csv",
        ["email,consent_at", "ada@example.com,", f"bob@example.com,{CONSENT}"],
    )
    code, output = drip(
        settings,
        "contacts",
        "import",
        str(path),
        "--sequence",
        "paced",
        "--consent-at",
        "2024-05-01",
    )
    assert code == 0, output
    assert "warning: rows without a consent_at are recorded as consenting at 2024-05-01" in output
    with runtime.sessions() as session:
        stored = dict(session.execute(select(Contact.email, Contact.consent_at)).all())
    assert stored == {
        "ada@example.com": datetime(2024, 5, 1, tzinfo=UTC),
        "bob@example.com": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
