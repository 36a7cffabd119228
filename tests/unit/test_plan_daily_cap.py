"""`plan` forecasts what the daily cap postpones, and the worker then does just that (SQLite,
the real sender)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import drip.cli.sequences as sequences_cli
import drip.studio.impact as studio_impact
from drip.cli.main import app
from drip.db import transaction
from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, ProviderEvent
from drip.schedule.impact import Group, plan_changes
from drip.send.sender import Outcome
from drip.sequences.catalog import SequenceCatalog
from tests.unit.world import START, World, build_world

#: Emails a contact may get in any 24 hours, in these tests.
CAP = 2


@pytest.fixture
def world(tmp_path: Path, sequences_dir: Path) -> Iterator[World]:
    """The unit world with a second sequence, `other`, and the sender capped at `CAP`."""
    quick = yaml.safe_load((sequences_dir / "quick.yaml").read_text())
    (sequences_dir / "other.yaml").write_text(yaml.safe_dump({**quick, "id": "other"}))
    yield from build_world(tmp_path, sequences_dir, daily_cap=CAP)


def given_contact(
    sessions: sessionmaker[Session], email: str, sent: dict[str, list[timedelta]]
) -> int:
    """A contact enrolled in each sequence of `sent`, with emails sent that long before
    START, and their quick step `second` queued, due at START; the queued row's id."""
    with transaction(sessions) as session:
        contact = Contact(email=email, email_hash=email)
        session.add(contact)
        session.flush()
        queued = None
        for sequence_id, ago in sent.items():
            enrollment = Enrollment(
                contact_id=contact.id, sequence_id=sequence_id, enrolled_at=START - timedelta(1)
            )
            session.add(enrollment)
            session.flush()
            rows = [
                Delivery(
                    step_id="welcome",
                    resend_number=n,
                    resend=n > 0,
                    status=DeliveryStatus.SENT,
                    due_at=START - before,
                    sent_at=START - before,
                )
                for n, before in enumerate(ago)
            ]
            if sequence_id == "quick":
                rows.append(Delivery(step_id="second", status=DeliveryStatus.QUEUED, due_at=START))
            for row in rows:
                row.enrollment_id, row.contact_id = enrollment.id, contact.id
                row.sequence_id = sequence_id
                session.add(row)
            session.flush()
            queued = queued or next((r.id for r in rows if r.status is DeliveryStatus.QUEUED), None)
        assert queued is not None
        return queued


def second_step_group(world: World, cap: int) -> Group:
    """Plan's group of quick's people waiting for `second`, as scheduled."""
    with world.sessions() as session:
        impacts = plan_changes(session, world.catalog, now=world.clock(), daily_cap=cap)
    (quick,) = [i for i in impacts if i.sequence_id == "quick"]
    (group,) = [g for g in quick.groups if g.pending == "second"]
    return group


def test_plan_shows_the_daily_cap_postponing_an_email_and_the_worker_does_so(
    world: World,
) -> None:
    # Given a contact sent two emails in the last day, across two sequences, and one sent one
    full = given_contact(
        world.sessions,
        "full@example.com",
        {"other": [timedelta(hours=5)], "quick": [timedelta(hours=2)]},
    )
    room = given_contact(world.sessions, "room@example.com", {"quick": [timedelta(hours=3)]})
    # When plan looks at their next emails, due now, under a cap of two a day
    group = second_step_group(world, CAP)
    # Then it shows one of the two postponed, until the older email is a day old
    assert group.people == 2
    assert group.postponed == 1
    assert group.postponed_to == START - timedelta(hours=5) + timedelta(days=1)
    # And the worker, sending both now, postpones that one to that time and sends the other
    assert world.sender.send(full).outcome is Outcome.POSTPONED
    assert world.row(full).due_at == group.postponed_to
    assert world.sender.send(room).outcome is Outcome.SENT


def test_plan_counts_a_resend_and_shows_nothing_without_a_cap(world: World) -> None:
    # Given a contact whose two emails today were one step and its resend
    given_contact(
        world.sessions, "twice@example.com", {"quick": [timedelta(hours=9), timedelta(hours=1)]}
    )
    # Then the cap postpones their next email until the first is a day old
    group = second_step_group(world, CAP)
    assert (group.postponed, group.postponed_to) == (1, START + timedelta(hours=15))
    # And with no cap (0), or a higher one, nothing is postponed
    assert second_step_group(world, 0).postponed == 0
    assert second_step_group(world, CAP + 1).postponed == 0


def test_the_plan_command_says_what_the_cap_postpones(
    world: World, sequences_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the contact of the first test, and DRIP_MAX_EMAILS_PER_DAY=2
    given_contact(
        world.sessions,
        "full@example.com",
        {"other": [timedelta(hours=5)], "quick": [timedelta(hours=2)]},
    )
    monkeypatch.setattr(sequences_cli, "utcnow", lambda: START)
    for name, value in {
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'unit.db'}",
        "DRIP_SEQUENCES_DIR": str(sequences_dir),
        "DRIP_MAX_EMAILS_PER_DAY": str(CAP),
        "DRIP_STATE_DIR": str(tmp_path / ".drip"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DRIP_ENV", raising=False)
    # When plan runs, for people and for scripts (not on a terminal: no progress bar)
    shown = CliRunner().invoke(app, ["sequences", "plan"], terminal_width=300)
    scripted = CliRunner().invoke(app, ["sequences", "plan", "--json"])
    # Then both say one person's next email waits for the cap, and until when
    assert shown.exit_code == 0, shown.output
    assert "postponed by the daily cap of 2: 1 people, to 2026-06-02 07:00 UTC" in shown.output
    assert "planning" not in shown.output
    (quick,) = [i for i in json.loads(scripted.output) if i["sequence"] == "quick"]
    (group,) = quick["groups"]
    assert (group["postponed_by_cap"], group["postponed_to"]) == (1, "2026-06-02T07:00:00+00:00")


def test_plan_shows_the_cap_on_a_re_planned_step_and_the_worker_does_so(
    world: World, sequences_dir: Path
) -> None:
    # Given a contact sent two emails in the last day, waiting for quick's `second`
    full = given_contact(
        world.sessions,
        "full@example.com",
        {"other": [timedelta(hours=5)], "quick": [timedelta(hours=2)]},
    )
    # And `second` removed from the file
    path = sequences_dir / "quick.yaml"
    data = yaml.safe_load(path.read_text())
    data["steps"] = [s for s in data["steps"] if s["id"] != "second"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.catalog = world.sender.catalog = SequenceCatalog.load(
        sequences_dir, postal_address="1 Example Street"
    )
    # When plan looks at them: `third` is re-planned, due now, and the cap holds it back
    with world.sessions() as session:
        impacts = plan_changes(session, world.catalog, now=world.clock(), daily_cap=CAP)
    (quick,) = [i for i in impacts if i.sequence_id == "quick"]
    (group,) = quick.groups
    assert (group.change, group.next_step) == (
        "re-planned: second is no longer in the file",
        "third",
    )
    assert (group.postponed, group.postponed_to) == (1, START + timedelta(hours=19))
    # Then the worker cancels `second`, plans `third` and postpones it to that time
    assert world.sender.send(full).outcome is Outcome.CANCELLED
    third = next(r for r in world.rows() if r.step_id == "third")
    assert world.sender.send(third.id).outcome is Outcome.POSTPONED
    assert world.row(third.id).due_at == group.postponed_to


def test_the_studio_impact_panel_shows_what_the_cap_postpones(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the contact of the first test, and the studio configured with a cap of two
    given_contact(
        world.sessions,
        "full@example.com",
        {"other": [timedelta(hours=5)], "quick": [timedelta(hours=2)]},
    )
    monkeypatch.setattr(studio_impact, "utcnow", lambda: START)
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    # When the impact panel is read, with the cap and without
    capped = studio_impact.read_impact(world.catalog, url, daily_cap=CAP)
    uncapped = studio_impact.read_impact(world.catalog, url)
    # Then it says what plan says: one person's next email waits for the cap, until when
    (quick,) = [i for i in capped["impacts"] if i["sequence"] == "quick"]
    (group,) = quick["groups"]
    assert (group["postponed_by_cap"], group["postponed_to"]) == (1, "2026-06-02T07:00:00+00:00")
    (quick,) = [i for i in uncapped["impacts"] if i["sequence"] == "quick"]
    assert quick["groups"][0]["postponed_by_cap"] == 0


def queue_other_second(session: Session, contact_id: int) -> int:
    """Queue the contact's `other` step `second`, due at START; its id."""
    other = Delivery(
        enrollment_id=session.scalars(
            select(Enrollment.id).where(
                Enrollment.sequence_id == "other", Enrollment.contact_id == contact_id
            )
        ).one(),
        contact_id=contact_id,
        sequence_id="other",
        step_id="second",
        status=DeliveryStatus.QUEUED,
        due_at=START,
    )
    session.add(other)
    session.flush()
    return other.id


def test_one_batch_counts_what_it_already_sends_against_the_cap(world: World) -> None:
    # Given a contact sent one email in the last day, with their next `quick` and `other`
    # emails queued, due now, under a cap of two a day
    quick = given_contact(
        world.sessions, "both@example.com", {"quick": [timedelta(hours=2)], "other": []}
    )
    with transaction(world.sessions) as session:
        first = session.get(Delivery, quick)
        assert first is not None
        other_id = queue_other_second(session, first.contact_id)
    # When one batch takes both
    results = world.sender.send_batch([quick, other_id])
    # Then one goes and the other waits until the first email is a day old
    outcomes = sorted(r.outcome.value for r in results.values())
    assert outcomes == [Outcome.POSTPONED.value, Outcome.SENT.value]
    (held,) = [i for i, r in results.items() if r.outcome is Outcome.POSTPONED]
    assert world.row(held).due_at == START - timedelta(hours=2) + timedelta(days=1)


def test_a_send_reported_in_the_same_batch_counts_against_the_cap(world: World) -> None:
    # Given a contact sent one email in the last day, their `quick` email sent again after a
    # lost answer (its first send since reported processed), and their `other` email due
    quick = given_contact(
        world.sessions, "both@example.com", {"quick": [timedelta(hours=2)], "other": []}
    )
    with transaction(world.sessions) as session:
        first = session.get(Delivery, quick)
        assert first is not None
        first.attempts = 2
        session.add(
            ProviderEvent(
                sg_event_id="processed-1",
                event="processed",
                delivery_id=quick,
                payload={"event": "processed"},
                occurred_at=START - timedelta(minutes=5),
                received_at=START - timedelta(minutes=4),
            )
        )
        other_id = queue_other_second(session, first.contact_id)
    # When one batch takes both
    results = world.sender.send_batch([quick, other_id])
    # Then the reported one is recorded sent, and the other waits: two went in the last day
    assert results[quick].outcome is Outcome.SENT
    assert results[other_id].outcome is Outcome.POSTPONED
    assert world.transport.sent == []
