"""Conditions, goals and the daily cap at send time, on the in-memory twin: no services."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drip.errors import SequenceError
from drip.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)
from drip.schedule.simulation import simulate
from drip.send.sender import DeliverySender, Outcome, SendPolicy
from drip.send.stores import MemorySendStore
from drip.send.transports import MemoryTransport
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.conditions import (
    ConditionError,
    ContactView,
    Situation,
    check_condition,
    evaluate,
)
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner
from tests.conftest import TEST_SEQUENCES

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("customer.tier == 'gold'", "names 'customer'"),
        ("has_event(name)", "names 'name'"),
        ("has_event('Bought It')", "is not an event name"),
        ("has_event('purchased', '7 days')", "within '7 days'"),
        ("has_event('purchased', since='7d')", "no argument 'since'"),
        ("downloaded('x')", "takes at most 0 arguments"),
        ("contact.__class__", "no name starts with _"),
        ("contact.attributes.x >", "does not parse"),
    ],
)
def test_a_condition_that_cannot_be_read_is_refused(source: str, complaint: str) -> None:
    with pytest.raises(ConditionError, match=complaint):
        check_condition(source)


def test_conditions_read_attributes_events_and_downloads() -> None:
    week_ago = NOW - timedelta(days=7)
    situation = Situation(
        ContactView("Ann", None, {"years": 12, "role": "cfo"}),
        (("booked-call", week_ago), ("purchased", NOW - timedelta(hours=1))),
        downloaded=True,
    )

    def holds(source: str) -> bool:
        check_condition(source)
        return evaluate(source, situation, now=NOW)

    assert holds("contact.attributes.years >= 10 and contact.attributes.role == 'cfo'")
    assert holds("has_event('purchased', '1d') and not has_event('booked-call', '1d')")
    assert holds("event_count('booked-call') == 1 and downloaded()")
    assert not holds("contact.attributes.missing")  # a missing attribute is false
    with pytest.raises(ConditionError):
        evaluate("contact.attributes.missing > 3", situation, now=NOW)


def test_a_sequence_with_a_bad_condition_is_refused_at_its_line(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    path.write_text(
        path.read_text().replace(
            "    template: quick/second.html\n",
            "    template: quick/second.html\n    when: \"has_event('x') and plan == 2\"\n",
        )
    )
    with pytest.raises(SequenceError) as refused:
        SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    (problem,) = refused.value.problems
    assert (problem.field, problem.line) == ("steps[1].when", 17)
    assert "names 'plan'" in problem.message


class Twin:
    """The sender on the in-memory store, with a sequence file edited for the test."""

    def __init__(self, folder: Path, edit: str, *, daily_cap: int = 0) -> None:
        target = folder / "sequences"
        shutil.copytree(TEST_SEQUENCES, target)
        path = target / "quick.yaml"
        path.write_text(edit_file(path.read_text(), edit))
        self.catalog = SequenceCatalog.load(target, postal_address="1 Example Street")
        self.store, self.transport = MemorySendStore(), MemoryTransport()
        self.sender = DeliverySender(
            store=self.store,
            catalog=self.catalog,
            transport=self.transport,
            links=Links(signer=TokenSigner("k"), base_url="https://drip.test"),
            policy=SendPolicy(
                send_lease=120,
                max_attempts=3,
                min_backoff=1,
                max_backoff=60,
                queue_lease=60,
                daily_cap=daily_cap,
            ),
            clock=lambda: NOW,
            concurrency=1,
        )
        self.store.contacts[1] = Contact(
            id=1, email="a@example.com", public_id="p1", status=ContactStatus.ACTIVE, attributes={}
        )
        self.store.enrollments[1] = Enrollment(
            id=1,
            contact_id=1,
            sequence_id="quick",
            status=EnrollmentStatus.ACTIVE,
            enrolled_at=NOW - timedelta(days=1),
        )

    def queue(self, step: str, *, sent_before: datetime | None = None, **row: object) -> Delivery:
        if sent_before is not None:
            self.store.add(
                Delivery(
                    enrollment_id=1,
                    contact_id=1,
                    sequence_id="quick",
                    step_id="welcome",
                    status=DeliveryStatus.SENT,
                    due_at=sent_before,
                    sent_at=sent_before,
                )
            )
        return self.store.add(
            Delivery(
                enrollment_id=1,
                contact_id=1,
                sequence_id="quick",
                step_id=step,
                status=DeliveryStatus.QUEUED,
                due_at=NOW,
                **row,
            )
        )

    def rows(self) -> list[tuple[str, DeliveryStatus]]:
        return [(d.step_id, d.status) for d in self.store.deliveries.values()]


def edit_file(text: str, edit: str) -> str:
    """Apply a named edit to the test sequence."""
    if edit == "second only for downloaders":
        return text.replace(
            "    template: quick/second.html\n",
            '    template: quick/second.html\n    when: "downloaded()"\n',
        )
    if edit == "ends on purchased":
        return text.replace("steps:\n", "exit:\n  - {event: purchased}\nsteps:\n", 1)
    return text


def test_a_false_condition_skips_the_step_and_plans_the_next_from_the_last_send(
    tmp_path: Path,
) -> None:
    twin = Twin(tmp_path, "second only for downloaders")
    last_sent = NOW - timedelta(hours=1)
    row = twin.queue("second", sent_before=last_sent)
    result = twin.sender.send(row.id)
    assert result.outcome is Outcome.SKIPPED
    assert row.error == "when: 'downloaded()' is false: skipped"
    assert twin.transport.sent == []
    # "third" is 1s after the last email sent (an hour ago): due at once
    third = twin.store.deliveries[result.next_delivery or 0]
    assert (third.step_id, third.status, third.due_at) == (
        "third",
        DeliveryStatus.QUEUED,
        last_sent + timedelta(seconds=1),
    )


def test_a_true_condition_sends(tmp_path: Path) -> None:
    twin = Twin(tmp_path, "second only for downloaders")
    twin.store.downloads[1] = {"quick"}
    row = twin.queue("second", sent_before=NOW - timedelta(hours=1))
    assert twin.sender.send(row.id).outcome is Outcome.SENT


def test_a_goal_of_this_run_stops_the_next_email(tmp_path: Path) -> None:
    twin = Twin(tmp_path, "ends on purchased")
    twin.store.events[1] = [("purchased", NOW - timedelta(minutes=5))]
    row = twin.queue("second")
    assert twin.sender.send(row.id).outcome is Outcome.CANCELLED
    assert row.error == "goal reached: purchased"
    assert twin.rows() == [("second", DeliveryStatus.CANCELLED)]


def test_a_goal_met_before_the_run_began_does_not_stop_it(tmp_path: Path) -> None:
    twin = Twin(tmp_path, "ends on purchased")
    twin.store.events[1] = [("purchased", NOW - timedelta(days=30))]
    row = twin.queue("second")
    assert twin.sender.send(row.id).outcome is Outcome.SENT


def test_a_resend_is_not_stopped_by_a_goal(tmp_path: Path) -> None:
    twin = Twin(tmp_path, "ends on purchased")
    twin.store.events[1] = [("purchased", NOW - timedelta(minutes=5))]
    row = twin.queue("second", resend=True)
    assert twin.sender.send(row.id).outcome is Outcome.SENT


def test_the_daily_cap_postpones_to_when_the_oldest_email_is_a_day_old(tmp_path: Path) -> None:
    # Given two emails today (at 02:00 and 08:00 UTC) and a cap of two
    twin = Twin(tmp_path, "", daily_cap=2)
    twin.queue("welcome", sent_before=NOW - timedelta(hours=10))
    twin.queue("second", sent_before=NOW - timedelta(hours=4))
    third = twin.queue("third")
    # When step 3 falls due at noon
    result = twin.sender.send(third.id)
    # Then it waits until 02:00 tomorrow (the 02:00 email is a day old), not dropped
    assert result.outcome is Outcome.POSTPONED
    assert (third.status, third.due_at) == (
        DeliveryStatus.SCHEDULED,
        NOW - timedelta(hours=10) + timedelta(days=1),
    )
    assert twin.transport.sent == []


def test_under_the_cap_the_email_goes(tmp_path: Path) -> None:
    twin = Twin(tmp_path, "", daily_cap=3)
    twin.queue("welcome", sent_before=NOW - timedelta(hours=10))
    twin.queue("second", sent_before=NOW - timedelta(hours=4))
    assert twin.sender.send(twin.queue("third").id).outcome is Outcome.SENT


def test_simulate_shows_the_daily_cap_as_the_worker_applies_it() -> None:
    # The test sequence sends three emails a second apart; a cap of two holds the third
    # until the first is a day old (no send window: any time)
    sequence = SequenceCatalog.load(TEST_SEQUENCES, postal_address="x").get("quick").definition
    sends = simulate(sequence, signup_at=NOW, zone=ZoneInfo("UTC"), daily_cap=2)
    assert [(s.step_id, s.due_utc) for s in sends] == [
        ("welcome", NOW),
        ("second", NOW + timedelta(seconds=1)),
        ("third", NOW + timedelta(days=1)),
    ]
    assert sends[2].note.startswith("postponed by the daily cap of 2")
