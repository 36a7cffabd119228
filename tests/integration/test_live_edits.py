"""Editing a live sequence, on the real PostgreSQL: removal, insertion, renaming, reordering.

Each story drives the real state machine (sender and scheduler) with a controlled clock,
so a one-second delay is crossed by moving the clock, not by waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from drip.db import transaction, utcnow
from drip.models import DeliveryStatus
from drip.runtime import Runtime
from drip.schedule.impact import plan_changes
from drip.sequences.catalog import SequenceCatalog
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.integration.helpers import deliveries


@dataclass
class Story:
    runtime: Runtime
    fake: FakeSendGrid
    sequences_dir: Path
    now: datetime

    def clock(self) -> datetime:
        return self.now

    def signup(self, email: str) -> None:
        with transaction(self.runtime.sessions) as session:
            result = enroll_contact(
                session,
                SignupRequest(email=email),
                catalog=self.runtime.catalog,
                default_sequence="quick",
                now=self.now,
                queue_lease=30,
            )
        assert result.delivery_to_enqueue is not None
        self.runtime.sender.send(result.delivery_to_enqueue)

    def run(self, seconds: float) -> None:
        """Move the clock, then let the scheduler claim and the sender send until nothing is due."""
        self.now += timedelta(seconds=seconds)
        for _ in range(20):
            sent: list[int] = []
            scheduler = self.runtime.scheduler()
            scheduler.clock = self.clock
            scheduler.enqueue = sent.extend
            scheduler.tick()
            for delivery_id in sent:
                while (nxt := self.runtime.sender.send(delivery_id).next_delivery) is not None:
                    delivery_id = nxt
            if not sent:
                return

    def edit_steps(self, change) -> None:  # type: ignore[no-untyped-def]
        """Rewrite the steps of quick.yaml with `change(steps)`, then reload as a deploy would."""
        path = self.sequences_dir / "quick.yaml"
        data = yaml.safe_load(path.read_text())
        data["steps"] = change(data["steps"])
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        catalog = SequenceCatalog.load(self.sequences_dir, postal_address="1 Example Street")
        self.runtime.catalog = self.runtime.sender.catalog = catalog

    def received(self) -> list[str]:
        return [a.payload["custom_args"]["step"] for a in self.fake.accepted]


def extra_step(step_id: str = "extra") -> dict[str, str]:
    return {
        "id": step_id,
        "delay": "1s",
        "subject": "An extra email",
        "template": "quick/second.html",
    }


@pytest.fixture
def story(runtime: Runtime, fake_sendgrid: FakeSendGrid, sequences_dir: Path) -> Story:
    s = Story(runtime, fake_sendgrid, sequences_dir, utcnow())
    runtime.sender.clock = s.clock
    return s


def test_a_removed_scheduled_step_is_cancelled_and_the_next_one_sent(story: Story) -> None:
    # Given a subscriber who got "welcome" and has "second" scheduled
    story.signup("a@example.com")
    # When "second" is removed from the file
    story.edit_steps(lambda steps: [s for s in steps if s["id"] != "second"])
    story.run(seconds=2)
    story.run(seconds=2)
    # Then "second" is cancelled and "third" follows
    assert story.received() == ["welcome", "third"]
    rows = {r.step_id: r for r in deliveries(story.runtime)}
    assert rows["second"].status is DeliveryStatus.CANCELLED
    assert rows["second"].error == "the step was removed from the sequence file"


def test_a_step_inserted_before_the_subscribers_position_is_never_sent_to_them(
    story: Story,
) -> None:
    story.signup("a@example.com")
    story.run(seconds=2)  # "second" sent; "third" scheduled
    story.edit_steps(lambda steps: [steps[0], extra_step(), *steps[1:]])
    story.run(seconds=2)
    story.run(seconds=2)
    assert story.received() == ["welcome", "second", "third"]


def test_a_step_inserted_after_the_subscribers_position_is_sent_in_its_place(story: Story) -> None:
    story.signup("a@example.com")
    story.edit_steps(lambda steps: [steps[0], steps[1], extra_step(), steps[2]])
    for _ in range(4):
        story.run(seconds=2)
    assert story.received() == ["welcome", "second", "extra", "third"]


def test_a_renamed_step_is_a_new_step(story: Story) -> None:
    story.signup("a@example.com")
    story.edit_steps(lambda steps: [steps[0], {**steps[1], "id": "second-v2"}, steps[2]])
    for _ in range(3):
        story.run(seconds=2)
    assert story.received() == ["welcome", "second-v2", "third"]
    statuses = {r.step_id: r.status for r in deliveries(story.runtime)}
    assert statuses["second"] is DeliveryStatus.CANCELLED


def test_reordering_follows_the_rule_and_plan_shows_its_effect_first(story: Story) -> None:
    # Given two subscribers at "welcome" with "second" scheduled
    story.signup("a@example.com")
    story.signup("b@example.com")
    # When "third" is moved before "second"
    story.edit_steps(lambda steps: [steps[0], steps[2], steps[1]])
    # Then the plan tells the reviewer: "second" goes as scheduled, then nothing is left for them
    with story.runtime.sessions() as session:
        (impact,) = plan_changes(session, story.runtime.catalog, now=story.now)
    assert impact.changed
    assert [(g.position, g.pending, g.next_step, g.change, g.people) for g in impact.groups] == [
        ("welcome", "second", "second", "as scheduled", 2)
    ]
    for _ in range(3):
        story.run(seconds=2)
    # And they get what the plan said: "third" now sits before their position
    assert story.received() == ["welcome", "welcome", "second", "second"]


def test_each_delivery_records_the_version_it_was_rendered_from(story: Story) -> None:
    story.signup("a@example.com")
    before = story.runtime.catalog.get("quick").version
    story.edit_steps(
        lambda steps: [steps[0], {**steps[1], "subject": "A better subject"}, steps[2]]
    )
    after = story.runtime.catalog.get("quick").version
    story.run(seconds=2)
    versions = {r.step_id: r.sequence_version for r in deliveries(story.runtime)}
    assert before != after
    assert (versions["welcome"], versions["second"]) == (before, after)


def test_plan_counts_people_per_step_and_their_new_next_step(story: Story) -> None:
    for n in range(5):
        story.signup(f"p{n}@example.com")
    story.run(seconds=2)  # all five got "second"; "third" scheduled
    story.signup("late@example.com")  # one more at "welcome"
    story.edit_steps(lambda steps: [steps[0], steps[1], extra_step("bonus")])  # "third" replaced
    with story.runtime.sessions() as session:
        (impact,) = plan_changes(session, story.runtime.catalog, now=story.now)
    assert impact.unreached_steps == ["bonus"]
    assert impact.removed_steps == ["third"]
    groups = {(g.position, g.next_step): g for g in impact.groups}
    assert groups[("welcome", "second")].people == 1
    replanned = groups[("second", "bonus")]
    assert replanned.people == 5
    assert replanned.change == "re-planned: third is no longer in the file"
