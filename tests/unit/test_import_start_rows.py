"""The rows an imported enrolment begins with, on the sender's in-memory twin and on
SQLite: the steps before its start are passed (skipped, `before_import_start`), so when the
start step leaves the file the worker plans the step after it, never step 1. PostgreSQL:
tests/integration/test_import_passed_steps.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drip.contacts.importer import first_row, import_contacts
from drip.contacts.imports import parse_rows, plan_start
from drip.deliveries.inserts import PassedStep, passed_delivery
from drip.deliveries.transitions import BEFORE_IMPORT_START
from drip.models import Contact, ContactStatus, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.send.sender import DeliverySender, Outcome
from drip.send.stores import MemorySendStore
from drip.send.transports import MemoryTransport
from drip.sequences.catalog import SequenceCatalog
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner
from tests.conftest import TEST_SEQUENCES
from tests.unit.test_sender_twin import POLICY
from tests.unit.world import START, World, build_world

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
S = DeliveryStatus


def catalog(folder: Path) -> SequenceCatalog:
    return SequenceCatalog.load(folder, postal_address="1 Example Street")


def imported(store: MemorySendStore, start_at: str) -> list[int]:
    """One subscriber imported into `quick` (welcome, second, third) at `start_at`: the ids
    of its rows, in order."""
    store.contacts[1] = Contact(
        id=1, email="a@example.com", public_id="p1", status=ContactStatus.ACTIVE, attributes={}
    )
    store.enrollments[1] = Enrollment(
        id=1,
        contact_id=1,
        sequence_id="quick",
        status=EnrollmentStatus.ACTIVE,
        enrolled_at=NOW,
        run=0,
    )
    sequence = catalog(TEST_SEQUENCES).get("quick").definition
    start = plan_start(sequence, timezone=None, now=NOW, start_at=start_at)
    rows = [
        passed_delivery(PassedStep(1, 1, step.id, at), sequence_id="quick", run=0)
        for step, at in start.passed
    ]
    first = first_row(1, 1, "quick", start)
    assert first is not None
    return [store.add(row).id for row in [*rows, first]]


def test_the_steps_before_the_start_are_passed_in_file_order() -> None:
    store = MemorySendStore()
    ids = imported(store, "third")
    got = [store.deliveries[i] for i in ids]
    assert [(d.step_id, d.status, d.error, d.run) for d in got] == [
        ("welcome", S.SKIPPED, BEFORE_IMPORT_START, 0),
        ("second", S.SKIPPED, BEFORE_IMPORT_START, 0),
        ("third", S.SCHEDULED, None, 0),
    ]
    assert store.progress(1).passed == {"welcome", "second"}
    assert store.progress(1).pending == {"third"}


def test_starting_at_step_one_passes_nothing() -> None:
    store = MemorySendStore()
    ids = imported(store, "welcome")
    assert [(store.deliveries[i].step_id, store.deliveries[i].status) for i in ids] == [
        ("welcome", S.SCHEDULED)
    ]


def drop_second(sequences_dir: Path) -> SequenceCatalog:
    """Delete quick's step `second` from the file; the catalog as reloaded."""
    quick = sequences_dir / "quick.yaml"
    text = quick.read_text()
    start, end = text.index("  - id: second"), text.index("  - id: third")
    quick.write_text(text[:start] + text[end:])
    return catalog(sequences_dir)


@pytest.fixture
def without_second(sequences_dir: Path) -> SequenceCatalog:
    """The test sequences with quick's step `second` deleted from the file."""
    return drop_second(sequences_dir)


def test_a_start_step_removed_from_the_file_is_followed_by_the_next_step(
    without_second: SequenceCatalog,
) -> None:
    # Given a subscriber imported at `second` (welcome passed), the claim of `second` due
    store = MemorySendStore()
    *_, start_id = imported(store, "second")
    store.deliveries[start_id].status = S.QUEUED
    transport = MemoryTransport()
    sender = DeliverySender(
        store=store,
        catalog=without_second,
        transport=transport,
        links=Links(signer=TokenSigner("k"), base_url="https://drip.test"),
        policy=POLICY,
        clock=lambda: NOW,
        concurrency=1,
    )
    # When the worker takes it after `second` left the file
    result = sender.send(start_id)
    # Then `second` is cancelled and `third` planned, not `welcome`: nothing sent meanwhile
    assert result.outcome is Outcome.CANCELLED
    assert [(d.step_id, d.status) for d in store.deliveries.values()] == [
        ("welcome", S.SKIPPED),
        ("second", S.CANCELLED),
        ("third", S.SCHEDULED),  # 1 s after the enrolment: from no send
    ]
    assert transport.sent == []


@pytest.fixture
def world(tmp_path: Path, sequences_dir: Path) -> Iterator[World]:
    yield from build_world(tmp_path, sequences_dir)


def test_on_sqlite_the_import_records_the_passed_steps_and_the_worker_goes_past_them(
    world: World, sequences_dir: Path
) -> None:
    # Given a subscriber imported into quick at `second`
    parsed = parse_rows("email,consent_at\na@example.com,2025-01-02\n", now=START)
    quick = world.catalog.get("quick").definition
    summary = import_contacts(
        world.sessions, parsed.rows, sequence=quick, now=START, start_at="second"
    )
    assert summary.imported == 1
    assert [(d.step_id, d.status, d.error, d.due_at) for d in world.rows()] == [
        ("welcome", S.SKIPPED, BEFORE_IMPORT_START, START),
        ("second", S.SCHEDULED, None, START),
    ]
    # When `second` leaves the file and the worker takes its row
    world.catalog = world.sender.catalog = drop_second(sequences_dir)
    world.scheduler().tick()
    world.sender.send_batch(world.enqueued)
    # Then `third` follows, not `welcome`
    assert [(d.step_id, d.status) for d in world.rows()] == [
        ("welcome", S.SKIPPED),
        ("second", S.CANCELLED),
        ("third", S.SCHEDULED),
    ]
    assert world.transport.sent == []
