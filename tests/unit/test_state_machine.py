"""The delivery state machine and the scheduler's recovery: stub transport, fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from drip.config import AmbiguousPolicy
from drip.db import transaction
from drip.deliveries.enqueue import enqueue_after_commit
from drip.deliveries.inserts import insert_deliveries
from drip.deliveries.moves import resend_ambiguous
from drip.deliveries.planning import plan_following
from drip.errors import AmbiguousSendError, TransientSendError
from drip.metrics import PLANS_REFUSED
from drip.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    ProviderEvent,
)
from drip.operations.resend import resend_step
from drip.operations.retry import RetryFilter, requeue_chunks
from drip.schedule.impact import plan_changes
from drip.send.message import OutgoingEmail
from drip.send.sender import Outcome
from drip.sequences.catalog import SequenceCatalog
from tests.unit.world import START, World, build_world


@pytest.fixture
def world(tmp_path: Path, sequences_dir: Path) -> Iterator[World]:
    yield from build_world(tmp_path, sequences_dir)


def test_a_sent_step_plans_the_next_from_its_send_time(world: World) -> None:
    first = world.signup("a@example.com")
    world.clock.advance(minutes=5)  # the worker was slow: the delay counts from the actual send
    result = world.sender.send(first)
    assert result.outcome is Outcome.SENT
    rows = world.rows()
    assert [(r.step_id, r.status) for r in rows] == [
        ("welcome", DeliveryStatus.SENT),
        ("second", DeliveryStatus.SCHEDULED),
    ]
    assert rows[1].due_at == START + timedelta(minutes=5, seconds=1)


def test_a_second_message_for_the_same_delivery_does_nothing(world: World) -> None:
    first = world.signup("a@example.com")
    assert world.sender.send(first).outcome is Outcome.SENT
    assert world.sender.send(first).outcome is Outcome.NOT_MINE
    assert len(world.transport.sent) == 1


def test_an_unsubscribed_contact_is_not_sent_a_queued_email(world: World) -> None:
    first = world.signup("a@example.com")
    with transaction(world.sessions) as session:
        session.execute(update(Contact).values(status=ContactStatus.UNSUBSCRIBED))
    assert world.sender.send(first).outcome is Outcome.CANCELLED
    assert world.transport.sent == []
    assert world.rows()[0].error == "contact unsubscribed"


def test_transient_failures_retry_then_fail_with_the_reason(world: World) -> None:
    first = world.signup("a@example.com")
    world.transport.failures = [TransientSendError("503 from provider")] * 3
    outcomes = []
    for _ in range(3):
        outcomes.append(world.sender.send(first).outcome)
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.FAILED]
    (row,) = world.rows()
    assert row.status is DeliveryStatus.FAILED
    assert row.error == "gave up after 3 attempts: 503 from provider"


def test_a_rate_limit_hint_sets_the_retry_delay(world: World) -> None:
    first = world.signup("a@example.com")
    world.transport.failures = [TransientSendError("429", retry_after=7.5)]
    result = world.sender.send(first)
    assert (result.outcome, result.retry_in) == (Outcome.RETRY, 7.5)
    assert world.rows()[0].status is DeliveryStatus.QUEUED


def test_a_removed_step_is_cancelled_and_the_next_one_planned(
    world: World, sequences_dir: Path
) -> None:
    first = world.signup("a@example.com")
    world.sender.send(first)
    # The marketer removes step "second" while it is scheduled
    path = sequences_dir / "quick.yaml"
    text = path.read_text()
    start = text.index("  - id: second")
    path.write_text(text[:start] + text[text.index("  - id: third") :])
    world.sender.catalog = SequenceCatalog.load(sequences_dir, postal_address="x")
    world.clock.advance(seconds=2)
    world.scheduler().tick()
    second = world.rows()[1].id
    result = world.sender.send(second)
    assert result.outcome is Outcome.CANCELLED
    assert [(r.step_id, r.status) for r in world.rows()] == [
        ("welcome", DeliveryStatus.SENT),
        ("second", DeliveryStatus.CANCELLED),
        ("third", DeliveryStatus.QUEUED),
    ]


def test_the_scheduler_claims_only_due_rows_and_enqueues_them(world: World) -> None:
    first = world.signup("a@example.com")
    world.sender.send(first)
    scheduler = world.scheduler()
    assert scheduler.tick().claimed == 0  # "second" is due in one second
    world.clock.advance(seconds=1)
    assert scheduler.tick().claimed == 1
    assert world.enqueued == [world.rows()[1].id]


def test_a_queued_row_whose_message_was_lost_is_enqueued_again_after_its_lease(
    world: World,
) -> None:
    first = world.signup("a@example.com")  # queued, but its message never reached Redis
    scheduler = world.scheduler()
    assert scheduler.tick().renewed == 0
    world.clock.advance(seconds=61)
    assert scheduler.tick().renewed == 1
    assert world.enqueued == [first]


def test_a_crash_mid_send_is_settled_from_the_processed_event(world: World) -> None:
    # Given a worker that died after the provider accepted the message
    first = world.signup("a@example.com")
    with transaction(world.sessions) as session:
        session.execute(
            update(Delivery).values(
                status=DeliveryStatus.SENDING, lease_until=START + timedelta(seconds=120)
            )
        )
        session.add(
            ProviderEvent(
                sg_event_id="ev1",
                event="processed",
                delivery_id=first,
                payload={},
                occurred_at=START + timedelta(seconds=1),
            )
        )
    # When its lease runs out
    world.clock.advance(seconds=121)
    report = world.scheduler().tick()
    # Then it counts as sent, is not resent, and the next step is planned
    assert (report.resolved_sent, report.resent) == (1, 0)
    rows = world.rows()
    assert (rows[0].status, rows[0].sent_at) == (DeliveryStatus.SENT, START + timedelta(seconds=1))
    assert rows[1].step_id == "second"
    assert world.transport.sent == []


@pytest.mark.parametrize(
    ("policy", "status", "enqueued"),
    [
        (AmbiguousPolicy.RESEND, DeliveryStatus.QUEUED, True),
        (AmbiguousPolicy.REVIEW, DeliveryStatus.FAILED, False),
    ],
)
def test_a_crash_mid_send_without_an_event_follows_the_policy(
    world: World, policy: AmbiguousPolicy, status: DeliveryStatus, enqueued: bool
) -> None:
    first = world.signup("a@example.com")
    with transaction(world.sessions) as session:
        session.execute(
            update(Delivery).values(
                status=DeliveryStatus.SENDING, lease_until=START + timedelta(seconds=120)
            )
        )
    world.clock.advance(seconds=121)
    world.scheduler(policy).tick()
    assert world.rows()[0].status is status
    assert (first in world.enqueued) is enqueued


def _lost_answer_then_processed(world: World, delivery_id: int) -> None:
    """The provider accepted `delivery_id` but its answer was lost; its event arrives."""
    world.transport.failures = [AmbiguousSendError("read timeout after the request went out")]
    assert world.sender.send(delivery_id).outcome is Outcome.AMBIGUOUS
    with transaction(world.sessions) as session:
        session.add(
            ProviderEvent(
                sg_event_id=f"processed-{delivery_id}",
                event="processed",
                delivery_id=delivery_id,
                payload={},
                occurred_at=world.clock(),
            )
        )


def test_a_resend_settled_from_its_event_plans_nothing(world: World) -> None:
    # Given a subscriber at step 2 (scheduled) who is resent step 1 by an operator
    first = world.signup("a@example.com")
    world.sender.send(first)
    with transaction(world.sessions) as session:
        contact = session.scalars(select(Contact)).one()
        sequence = world.catalog.get("quick").definition
        resent = resend_step(
            session,
            contact,
            sequence,
            "welcome",
            reason="asked again",
            operator="ops",
            now=world.clock(),
            queue_lease=60,
        )
    # When the resend's answer is lost and the scheduler settles it from the event
    _lost_answer_then_processed(world, resent)
    report = world.scheduler().tick()
    # Then it counts as sent, and step 2 is still planned once
    assert report.resolved_sent == 1
    steps = [(r.step_id, r.status, r.resend) for r in world.rows()]
    assert steps == [
        ("welcome", DeliveryStatus.SENT, False),
        ("second", DeliveryStatus.SCHEDULED, False),
        ("welcome", DeliveryStatus.SENT, True),
    ]


def test_a_planned_send_settled_from_its_event_plans_the_next_step(world: World) -> None:
    first = world.signup("a@example.com")
    _lost_answer_then_processed(world, first)
    world.clock.advance(seconds=1)
    assert world.scheduler().tick().resolved_sent == 1
    assert [(r.step_id, r.status) for r in world.rows()] == [
        ("welcome", DeliveryStatus.SENT),
        ("second", DeliveryStatus.QUEUED),  # due at once: enqueued by the scheduler
    ]
    assert world.enqueued == [world.rows()[1].id]


def test_a_plan_asked_for_twice_plans_once(world: World) -> None:
    first = world.signup("a@example.com")
    world.sender.send(first)
    refused = PLANS_REFUSED._value.get()
    with transaction(world.sessions) as session:
        enrollment = session.scalars(select(Enrollment)).one()
        contact = session.scalars(select(Contact)).one()
        again = plan_following(
            session,
            enrollment=enrollment,
            contact=contact,
            sequence=world.catalog.get("quick").definition,
            now=world.clock(),
            queue_lease=60,
            sent_step="welcome",
            sent_at=world.clock(),
        )
    assert again is None
    assert [r.step_id for r in world.rows()] == ["welcome", "second"]
    assert PLANS_REFUSED._value.get() == refused  # not even tried: the database had no say


def test_the_database_refuses_a_second_pending_planned_row(world: World) -> None:
    first = world.signup("a@example.com")
    world.sender.send(first)
    second = world.rows()[1]
    duplicate = Delivery(
        enrollment_id=second.enrollment_id,
        contact_id=second.contact_id,
        sequence_id="quick",
        step_id="second",
        resend_number=1,
        status=DeliveryStatus.SCHEDULED,
        due_at=world.clock(),
    )
    before = PLANS_REFUSED._value.get()
    with transaction(world.sessions) as session:
        assert insert_deliveries(session, [duplicate]) == []
    assert PLANS_REFUSED._value.get() == before + 1
    assert [r.step_id for r in world.rows()] == ["welcome", "second"]


def test_plan_reads_a_skipped_step_as_the_worker_does(world: World) -> None:
    # Given step 2 skipped as too late and step 3 renamed in the file
    first = world.signup("a@example.com")
    world.sender.send(first)
    second = world.rows()[1].id
    with transaction(world.sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == second)
            .values(status=DeliveryStatus.SKIPPED, error="too late")
        )
    # When plan looks at the subscriber
    with world.sessions() as session:
        (impact,) = [i for i in plan_changes(session, world.catalog, now=world.clock())]
    # Then, like the worker, it continues after the skipped step, never resending it
    (group,) = impact.groups
    assert (group.position, group.next_step) == ("second", "third")


def test_a_retried_skipped_step_goes_as_a_resend(world: World) -> None:
    # Given step 2 skipped as too late, step 3 planned after it
    first = world.signup("a@example.com")
    world.sender.send(first)
    second = world.rows()[1].id
    with transaction(world.sessions) as session:
        session.execute(
            update(Delivery).where(Delivery.id == second).values(status=DeliveryStatus.SKIPPED)
        )
    # When an operator retries it and it is sent
    (ids,) = list(
        requeue_chunks(
            world.sessions,
            RetryFilter(status=DeliveryStatus.SKIPPED),
            reason="send it anyway",
            operator="ops",
            now=world.clock(),
            queue_lease=60,
        )
    )
    assert ids == [second]
    assert world.sender.send(second).outcome is Outcome.SENT
    # Then it went off the line: a resend, planning nothing
    retried = world.rows()[1]
    assert (retried.status, retried.resend) == (DeliveryStatus.SENT, True)
    assert [r.step_id for r in world.rows()] == ["welcome", "second"]


def _refuse(ids: object) -> None:
    raise ConnectionError("Redis refused the connection")


def test_a_row_redis_refuses_goes_back_to_the_schedule(world: World) -> None:
    # Given a signup's step 1, committed as queued
    first = world.signup("a@example.com")
    # When Redis refuses its message
    assert enqueue_after_commit(_refuse, world.sessions, [first], clock=world.clock) is False
    # Then the row is scheduled again, for the next tick to claim
    (row,) = world.rows()
    assert (row.status, row.lease_until) == (DeliveryStatus.SCHEDULED, None)
    scheduler = world.scheduler()
    scheduler.enqueue = _refuse
    report = scheduler.tick()
    assert (report.claimed, report.enqueue_failures) == (1, 1)
    assert world.rows()[0].status is DeliveryStatus.SCHEDULED
    scheduler.enqueue = world.enqueued.extend
    assert scheduler.tick().claimed == 1
    assert world.enqueued == [first]


def test_a_row_taken_over_mid_call_plans_nothing(world: World) -> None:
    # Given a send whose row the scheduler takes over while the provider call is in flight
    first = world.signup("a@example.com")
    accept = world.transport.send

    def taken_over(email: OutgoingEmail) -> str:
        with transaction(world.sessions) as session:
            resend_ambiguous(session, [first], now=world.clock(), queue_lease=60)
        return accept(email)

    world.transport.send = taken_over  # type: ignore[method-assign]
    # When the call returns accepted
    result = world.sender.send(first)
    # Then the worker records nothing for it, and plans nothing after it
    assert (result.outcome, result.next_delivery) == (Outcome.SENT, None)
    assert [(r.step_id, r.status) for r in world.rows()] == [("welcome", DeliveryStatus.QUEUED)]


def test_a_blind_resend_whose_first_send_is_reported_in_time_is_not_sent_again(
    world: World,
) -> None:
    # Given a send whose answer was lost, re-queued blind when no event came in time
    first = world.signup("a@example.com")
    world.transport.failures = [AmbiguousSendError("read timeout after the request went out")]
    assert world.sender.send(first).outcome is Outcome.AMBIGUOUS
    world.clock.advance(seconds=901)
    assert world.scheduler().tick().resent == 1
    # When the provider's processed event arrives before a worker takes the row again
    with transaction(world.sessions) as session:
        session.add(
            ProviderEvent(
                sg_event_id="late",
                event="processed",
                delivery_id=first,
                payload={},
                occurred_at=world.clock() - timedelta(seconds=900),
            )
        )
    result = world.sender.send(first)
    # Then it is recorded as sent at the provider's time, and not sent a second time
    assert result.outcome is Outcome.SENT
    assert world.transport.sent == []
    rows = world.rows()
    assert (rows[0].status, rows[0].sent_at) == (
        DeliveryStatus.SENT,
        START + timedelta(seconds=1),
    )
    assert [r.step_id for r in rows] == ["welcome", "second"]
