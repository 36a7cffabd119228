"""The state-machine model's rules for delivery (`test_state_model.py`): signups, the
scheduler, workers sending (and dying, and losing answers), the provider's events,
unsubscribes (also in the middle of a batch), pauses, operators' resends and retries,
edits of the sequence files, and Redis refusing."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from sqlalchemy import select

from drip.db import transaction
from drip.deliveries.moves import claim_to_send
from drip.errors import OperationRefused
from drip.events.effects import apply_events
from drip.models import Contact, Delivery, DeliveryStatus, EnrollmentStatus, ProviderEvent
from drip.operations.resend import resend_step
from drip.operations.retry import RetryFilter, requeue_chunks
from drip.schedule.pauses import pause_sequence, resume_sequence
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from tests.integration.state_model_checks import Row, S, evented, read_rows
from tests.integration.state_model_parts import (
    AMBIGUOUS_WAIT,
    CONDITIONS,
    QUEUE_LEASE,
    SEND_LEASE,
    TEMPLATES,
    Answer,
    StepSpec,
)
from tests.integration.state_model_world import (
    PEOPLE,
    SEQUENCES,
    ModelWorld,
    contact_of,
    email_of,
    event,
    guarded,
)

#: How far one rule may move the clock: within a lease, just past each wait, a day.
ADVANCES = (1.0, 30.0, QUEUE_LEASE + 1, SEND_LEASE + 1, AMBIGUOUS_WAIT + 1, 3600.0, 86400.0)


class DeliveryRules(ModelWorld):
    """The rules of delivery; see the module docstring."""

    @rule(who=st.integers(0, PEOPLE - 1), sequence=st.sampled_from(SEQUENCES))
    @guarded
    def signup(self, who: int, sequence: str) -> None:
        """`POST /signups`: enroll (or re-enroll, or ask to confirm), enqueue after commit."""
        # Requests come at distinct instants: `enroll_contact` tells a new enrollment from a
        # known one by its `enrolled_at` being now.
        self.clock.advance(0.001)
        with transaction(self.sessions) as session:
            result = enroll_contact(
                session,
                SignupRequest(email=email_of(who), sequence=sequence),
                catalog=self.catalog,
                default_sequence="quick",
                now=self.clock(),
                queue_lease=QUEUE_LEASE,
            )
            contact_id = session.scalars(
                select(Contact.id).where(Contact.email == email_of(who))
            ).one()
        self.signed_up = True
        self.person[contact_id] = who
        self.signups.append((self.ledger.tick(), contact_id, sequence))
        if result.delivery_to_enqueue is not None:
            self.enqueue([result.delivery_to_enqueue])

    @rule()
    @guarded
    def scheduler_tick(self) -> None:
        """One scheduler tick: recovery jobs (when due), then claims."""
        self.tick()

    @precondition(lambda self: self.signed_up)
    @rule(answers=st.lists(st.sampled_from(list(Answer)), min_size=1, max_size=6))
    @guarded
    def worker_sends(self, answers: list[Answer]) -> None:
        """A worker fetches as many messages as `answers` has and sends them; the provider
        answers its calls in that order. (With nothing queued, time first runs on to the
        next due row and the scheduler ticks.)"""
        self.await_work()
        self.work(self.broker.take(len(answers)), answers)

    @precondition(lambda self: self.signed_up)
    @rule(take=st.integers(1, 4))
    @guarded
    def worker_dies_after_claim(self, take: int) -> None:
        """A worker fetches messages, claims the rows, and is killed before anything else."""
        self.await_work()
        ids = self.broker.take(take)
        now = self.clock()
        with transaction(self.sessions) as session:
            claimed = claim_to_send(session, ids, now=now, send_lease=SEND_LEASE)
        for delivery in claimed:
            self.sending_since[delivery.id] = ("claim", now)

    @precondition(lambda self: len(self.ledger.accepted) > len(self.with_event))
    @rule(pick=st.integers(0, 1000))
    @guarded
    def processed_event(self, pick: int) -> None:
        """The provider's `processed` event for one email it accepted arrives (early or
        late: whenever this rule runs; never: when it does not)."""
        waiting = sorted({d for _, d, _ in self.ledger.accepted} - self.with_event)
        if not waiting:
            return
        delivery_id = waiting[pick % len(waiting)]
        with transaction(self.sessions) as session:
            session.add(
                ProviderEvent(
                    sg_event_id=f"processed-{delivery_id}",
                    event="processed",
                    delivery_id=delivery_id,
                    payload={"event": "processed", "delivery_id": str(delivery_id)},
                    occurred_at=self.ledger.first_accepted_at(delivery_id),
                    received_at=self.clock(),
                )
            )
        self.with_event.add(delivery_id)

    @precondition(lambda self: self.ledger.accepted)
    @rule(pick=st.integers(0, 1000), kind=st.sampled_from(["unsubscribe", "bounce", "spamreport"]))
    @guarded
    def provider_reports_a_stop(self, pick: int, kind: str) -> None:
        """The provider reports an unsubscribe, a bounce or a spam report for an email it
        took; the events worker applies it (`drip.events.effects`)."""
        accepted = sorted({d for _, d, _ in self.ledger.accepted})
        delivery_id = accepted[pick % len(accepted)]
        with transaction(self.sessions) as session:
            event_row = ProviderEvent(
                sg_event_id=f"{kind}-{delivery_id}-{self.ledger.tick()}",
                event=kind,
                delivery_id=delivery_id,
                payload={"event": kind, "type": "bounce", "reason": "550 mailbox unavailable"},
                occurred_at=self.clock(),
                received_at=self.clock(),
            )
            session.add(event_row)
            session.flush()
            contact_id = session.get_one(Delivery, delivery_id).contact_id
        with transaction(self.sessions) as session:
            assert apply_events(session, [event_row.id], now=self.clock()) == 1
        self.acknowledged(contact_id, None)

    @rule(seconds=st.sampled_from(ADVANCES))
    @guarded
    def time_passes(self, seconds: float) -> None:
        """The clock moves: within a lease, past one of the three waits, or a day."""
        self.clock.advance(seconds)

    @rule()
    @guarded
    def healthy_hour(self) -> None:
        """The clock moves to the next due row; the scheduler ticks and a worker sends
        everything queued, the provider accepting all of it."""
        self.next_due()
        self.work_all()

    @precondition(lambda self: self.signed_up)
    @rule(pick=st.integers(0, 100), everything=st.booleans())
    @guarded
    def unsubscribe(self, pick: int, everything: bool) -> None:
        """The subscriber of the `pick`th enrollment unsubscribes from everything, or
        leaves that enrollment's sequence."""
        with self.sessions() as session:
            found = contact_of(session, pick)
        if found is not None:
            contact, sequence = found
            self.stop_contact(contact.public_id, contact.id, None if everything else sequence)

    @precondition(lambda self: self.signed_up)
    @rule(
        answers=st.lists(st.sampled_from(list(Answer)), min_size=1, max_size=6),
        pick=st.integers(0, 100),
        everything=st.booleans(),
    )
    @guarded
    def unsubscribe_during_a_send(self, answers: list[Answer], pick: int, everything: bool) -> None:
        """A worker claims a batch; before its send-time checks, the subscriber of one of
        its rows unsubscribes (from everything, or that row's sequence); then the worker
        goes on, the provider answering as `answers` says."""

        def stop(row: Row, public_id: str) -> None:
            sequence_id = None if everything else row.sequence_id
            self.stop_contact(public_id, row.contact_id, sequence_id)

        self.during_a_send(answers, pick, stop)

    @rule(sequence=st.sampled_from(SEQUENCES), paused=st.booleans())
    @guarded
    def pause_or_resume(self, sequence: str, paused: bool) -> None:
        """An operator pauses or resumes a sequence."""
        with transaction(self.sessions) as session:
            change = pause_sequence if paused else resume_sequence
            change(session, sequence, by="ops", reason="model", now=self.clock())

    @precondition(lambda self: self.signed_up)
    @rule(pick=st.integers(0, 100), step=st.integers(0, 5), finished=st.booleans())
    @guarded
    def operator_resend(self, pick: int, step: int, finished: bool) -> None:
        """`drip resend` of a step of the `pick`th enrollment, or of the `pick`th that
        finished the sequence (someone asking for the template again); refused for an
        unsubscribed contact."""
        with self.sessions() as session:
            found = contact_of(session, pick, EnrollmentStatus.COMPLETED if finished else None)
        if found is not None:
            contact, sequence = found
            steps = self.catalog.get(sequence).definition.steps
            self._resend(contact.id, sequence, steps[step % len(steps)].id)

    @rule(pick=st.integers(0, 100))
    @guarded
    def operator_resends_a_failed_email(self, pick: int) -> None:
        """`drip resend` of the step of the `pick`th failed row, as an operator does for a
        subscriber whose email failed."""
        with self.sessions() as session:
            failed = [r for r in read_rows(session) if r.status is S.FAILED]
        if failed:
            row = failed[pick % len(failed)]
            if self.catalog.get(row.sequence_id).definition.step(row.step_id) is not None:
                self._resend(row.contact_id, row.sequence_id, row.step_id)

    def _resend(self, contact_id: int, sequence: str, step_id: str) -> None:
        try:
            with transaction(self.sessions) as session:
                contact = session.get_one(Contact, contact_id)
                delivery_id = resend_step(
                    session,
                    contact,
                    self.catalog.get(sequence).definition,
                    step_id,
                    reason="asked again",
                    operator="ops",
                    now=self.clock(),
                    queue_lease=QUEUE_LEASE,
                )
        except OperationRefused:
            event("resend: refused")
            return
        event("resend: queued")
        self.enqueue([delivery_id])

    @rule(status=st.sampled_from([S.FAILED, S.SKIPPED]))
    @guarded
    def operator_retry(self, status: DeliveryStatus) -> None:
        """`drip retry`: failed (or skipped) rows go back to the queue.

        A row the provider may have taken (its answer was lost, or its worker died) fails
        for review when no event came in time; an operator who retries it anyway chooses
        to send it again, so one more acceptance of it is allowed. Not when its `processed`
        event is in: then drip knows it went, and must not send it again.
        """
        with self.sessions() as session:
            seen = evented(session)
        accepted = self.ledger.counts()
        for ids in requeue_chunks(
            self.sessions,
            RetryFilter(status=status),
            reason="model",
            operator="ops",
            now=self.clock(),
            queue_lease=QUEUE_LEASE,
        ):
            event(f"retry: {status} requeued")
            for delivery_id in ids:
                if delivery_id not in accepted:
                    continue
                if delivery_id not in seen:
                    self.excused[delivery_id] += 1
            self.enqueue(ids)

    @rule(
        sequence=st.sampled_from(SEQUENCES),
        kind=st.sampled_from(["remove", "insert", "rename"]),
        position=st.integers(0, 5),
        delay=st.sampled_from(["0s", "10m", "1h", "1d"]),
    )
    @guarded
    def edit_sequence(self, sequence: str, kind: str, position: int, delay: str) -> None:
        """A marketer removes, inserts (with a condition, or not) or renames a step; the
        files are reloaded and given to the sender and the scheduler, as a restart would."""
        steps = list(self.files.steps[sequence])
        if kind == "insert":
            at = position % (len(steps) + 1)
            template = TEMPLATES[1 + position % 2]
            when = [None, *CONDITIONS][position % (len(CONDITIONS) + 1)]
            steps.insert(at, StepSpec(self.files.new_step_id(), delay, template, when=when))
        elif kind == "remove" and len(steps) > 1:
            del steps[position % len(steps)]
        else:
            at = position % len(steps)
            old = steps[at]
            steps[at] = StepSpec(self.files.new_step_id(), old.delay, old.template, when=old.when)
        self.files.edit(sequence, steps)
        self.reload()

    @rule(refusals=st.integers(1, 3))
    @guarded
    def redis_refuses(self, refusals: int) -> None:
        """Redis goes down for a moment: it refuses the next `refusals` enqueues."""
        self.broker.refusals = refusals
