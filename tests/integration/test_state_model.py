"""A model of the delivery state machine, searched by Hypothesis.

A `RuleBasedStateMachine` drives drip's real code (signup, the scheduler and its recovery
jobs, the sender, unsubscribes, pauses, operator resends and retries, live edits of the
sequence files) on one real PostgreSQL database per run, through random interleavings
with a clock the rules move, a provider whose answer to each call a rule chooses
(accepted, a transient failure, a lost answer after accepting, a refusal, a worker killed
before or after the call) and `processed` events that come early, late or never.

After every step it checks the promises:

- no delivery row (one per (enrollment, step, resend number)) is accepted by the provider
  twice, unless it was sent again blind: by the scheduler after its wait ran out with no
  event (the documented cost of DRIP_AMBIGUOUS_POLICY=resend; never before that wait), or
  by an operator's retry of a row failed for review with no event;
- a row the scheduler takes out of `sending` had no `processed` event (else it is settled
  as sent) and waited its own lease: SEND_LEASE after a claim, AMBIGUOUS_WAIT after a
  lost answer;
- nothing is accepted for a contact after an acknowledged unsubscribe (of that sequence,
  for leaving one), but a confirmation answering a signup made after it;
- an unsubscribe or leave leaves nothing of the contact (or sequence) scheduled or queued;
- at most one pending planned row per enrollment; a row says sent only if the provider
  accepted it; a failed, cancelled or skipped row says why; a failed planned row is the
  last of its line; only the end of a planned row moves a line on (plans the next step or
  completes the enrollment): a resend or a confirmation never does;
- `drip sequences plan` (position and next step of each active enrollment) and
  `drip stats` (pending and sent per step) read progress as the worker does.

At the end the provider accepts everything while time runs on: every row must settle
(sent, skipped, cancelled or failed with a reason), none stuck.

Two bugs this search found are pinned by the directed tests at the end of this file.

`make test` runs a short search; `make fuzz` a long one (DRIP_STATE_MODEL_PROFILE=fuzz).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.config import AmbiguousPolicy
from drip.db import create_db_engine, session_factory, transaction
from drip.deliveries.enqueue import enqueue_after_commit
from drip.deliveries.moves import claim_to_send
from drip.deliveries.progress import on_the_line, read_progress_many
from drip.deliveries.transitions import SETTLED
from drip.dispatch.scheduler import Scheduler, SchedulerPolicy
from drip.errors import OperationRefused
from drip.events.effects import apply_events
from drip.models import (
    PENDING,
    Contact,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    ProviderEvent,
    SequenceState,
)
from drip.operations.resend import resend_step
from drip.operations.retry import RetryFilter, requeue_chunks
from drip.reports.funnel import funnel
from drip.schedule.impact import plan_changes
from drip.schedule.pauses import pause_sequence, resume_sequence
from drip.schedule.planner import next_step
from drip.send.sender import DeliverySender, Outcome, SendPolicy
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.unsubscribe.links import Links
from drip.unsubscribe.service import leave_sequence, unsubscribe_contact
from drip.unsubscribe.tokens import TokenSigner
from tests.conftest import TEST_SEQUENCES
from tests.integration.conftest import PG_ADMIN_URL
from tests.integration.state_model_parts import (
    AMBIGUOUS_WAIT,
    QUEUE_LEASE,
    SEND_LEASE,
    TEMPLATES,
    Answer,
    Broker,
    Clock,
    InterleavedStore,
    Ledger,
    ScriptedProvider,
    SequenceFiles,
    StepSpec,
    WorkerKilled,
)

S = DeliveryStatus

#: The people who may sign up, and the sequences they may join.
PEOPLE = 6
SEQUENCES = ("quick", "other")

#: The default search fits `make test` (well under a minute); `make fuzz` goes deeper.
settings.register_profile(
    "state-model",
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "state-model-fuzz",
    max_examples=int(os.environ.get("DRIP_FUZZ_EXAMPLES", "300")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = (
    "state-model-fuzz"
    if os.environ.get("DRIP_STATE_MODEL_PROFILE", "").strip() == "fuzz"
    else "state-model"
)
#: DRIP_STATE_MODEL_SHRINK=0 reports the first failing run as found, without the minutes
#: Hypothesis spends shrinking it (each run builds a database).
SHRINK = os.environ.get("DRIP_STATE_MODEL_SHRINK", "1").strip() != "0"

#: How far one rule may move the clock: within a lease, just past each wait, a day.
ADVANCES = (1.0, 30.0, QUEUE_LEASE + 1, SEND_LEASE + 1, AMBIGUOUS_WAIT + 1, 3600.0, 86400.0)

F = TypeVar("F", bound=Callable[..., Any])

#: What the search reached, by kind (printed with DRIP_STATE_MODEL_STATS=1).
REACHED: Counter[str] = Counter()


def event(what: str) -> None:
    """Count something the search reached."""
    REACHED[what] += 1


def guarded(method: F) -> F:
    """Mark the run broken when a step fails, so teardown does not pile a second error
    (from draining a broken world) on top of the first."""

    @functools.wraps(method)
    def run(self: DeliveryModel, *args: Any, **kwargs: Any) -> Any:
        event(f"rule: {method.__name__}")
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise

    return run  # type: ignore[return-value]


@dataclass(frozen=True)
class Row:
    """A delivery row as the checks read it."""

    id: int
    enrollment_id: int
    contact_id: int
    sequence_id: str
    step_id: str
    resend_number: int
    resend: bool
    status: DeliveryStatus
    error: str | None
    due_at: datetime
    lease_until: datetime | None

    @property
    def on_the_line(self) -> bool:
        """A planned row: not a resend, not a confirmation."""
        return on_the_line(resend=self.resend, step_id=self.step_id)


@dataclass(frozen=True)
class Stop:
    """An acknowledged unsubscribe (`sequence_id` None) or leave, at a ledger step, with the
    rows the contact had then."""

    at: int
    contact_id: int
    sequence_id: str | None
    rows_then: frozenset[int]


class Databases:
    """Fresh databases cloned from the migrated template, one per run, each made in a
    thread while the run before it goes on (under load a clone takes seconds), and dropped
    in that thread too."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="model-databases")
        self._next = self._thread.submit(self._create)

    def take(self) -> str:
        """A fresh database's name, for one run."""
        name = self._next.result()
        self._next = self._thread.submit(self._create)
        return name

    def give_back(self, name: str) -> None:
        """Drop a run's database."""
        self._thread.submit(_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        """Drop the database made ahead, and wait for every drop."""
        self.give_back(self._next.result())
        self._thread.shutdown(wait=True)

    def _create(self) -> str:
        name = f"drip_model_{uuid.uuid4().hex[:12]}"
        _admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return name


class DeliveryModel(RuleBasedStateMachine):
    """drip's delivery state machine under random interleavings; see the module docstring."""

    #: Where each run's database comes from (set by the test).
    databases: ClassVar[Databases]

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.database = self.databases.take()
        self.engine = create_db_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.database}")
        self.sessions = session_factory(self.engine)
        self.folder = Path(tempfile.mkdtemp(prefix="drip-model-"))
        self.files = SequenceFiles(self.folder / "sequences", TEST_SEQUENCES)
        self.catalog: SequenceCatalog = self.files.load()
        self.clock = Clock()
        self.ledger = Ledger()
        self.provider = ScriptedProvider(self.ledger, self.clock)
        self.broker = Broker()
        self.store = InterleavedStore(self.sessions)
        self.sender = DeliverySender(
            store=self.store,
            catalog=self.catalog,
            transport=self.provider,
            links=Links(signer=TokenSigner("model-secret"), base_url="https://drip.test"),
            policy=SendPolicy(
                send_lease=SEND_LEASE,
                max_attempts=3,
                min_backoff=1,
                max_backoff=30,
                queue_lease=QUEUE_LEASE,
                ambiguous_wait=AMBIGUOUS_WAIT,
            ),
            clock=self.clock,
            concurrency=1,  # one call at a time: the script's answers go in a known order
        )
        self.scheduler: Scheduler | None = None
        self.policy = AmbiguousPolicy.RESEND
        #: Rows in `sending` and since when: ("claim", t) waits SEND_LEASE, ("lost", t)
        #: waits AMBIGUOUS_WAIT before the scheduler may take them back.
        self.sending_since: dict[int, tuple[str, datetime]] = {}
        #: Accepted sends of a row the scheduler may have made blind (resent after its wait).
        self.excused: Counter[int] = Counter()
        self.stops: list[Stop] = []
        self.with_event: set[int] = set()
        self.signed_up = False
        #: Each signup: (ledger step, contact id, sequence id).
        self.signups: list[tuple[int, int, str]] = []

    # The world's parts ------------------------------------------------------------------

    @initialize(
        policy=st.sampled_from(list(AmbiguousPolicy)),
        signups=st.lists(st.tuples(st.integers(0, PEOPLE - 1), st.sampled_from(SEQUENCES))),
    )
    @guarded
    def start(self, policy: AmbiguousPolicy, signups: list[tuple[int, str]]) -> None:
        """The scheduler, with the ambiguous-send policy of this run, and the first signups."""
        self.policy = policy
        self.scheduler = Scheduler(
            sessions=self.sessions,
            catalog=self.catalog,
            enqueue=self.broker.enqueue,
            policy=SchedulerPolicy(
                batch_size=10,
                queue_lease=QUEUE_LEASE,
                send_lease=SEND_LEASE,
                ambiguous_policy=policy,
            ),
            clock=self.clock,
        )
        for who, sequence in signups:
            self.signup(who, sequence)

    def teardown(self) -> None:
        """Drain and check the end state (unless a step already failed); drop the database."""
        try:
            if not self.broken and self.scheduler is not None:
                self._drain()
                self._check_end_state()
                with self.sessions() as session:
                    for status in session.scalars(select(Enrollment.status)):
                        event(f"end: enrollment {status}")
                    for row in _rows(session):
                        event(f"end: {'resend' if row.resend else row.step_id} {row.status}")
        finally:
            self.engine.dispose()
            self.databases.give_back(self.database)
            shutil.rmtree(self.folder, ignore_errors=True)

    # Rules ------------------------------------------------------------------------------

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
                SignupRequest(email=_email(who), sequence=sequence),
                catalog=self.catalog,
                default_sequence="quick",
                now=self.clock(),
                queue_lease=QUEUE_LEASE,
            )
            contact_id = session.scalars(
                select(Contact.id).where(Contact.email == _email(who))
            ).one()
        self.signed_up = True
        self.signups.append((self.ledger.tick(), contact_id, sequence))
        if result.delivery_to_enqueue is not None:
            self._enqueue([result.delivery_to_enqueue])

    @rule()
    @guarded
    def scheduler_tick(self) -> None:
        """One scheduler tick: recovery jobs (when due), then claims."""
        self._tick()

    @precondition(lambda self: self.signed_up)
    @rule(answers=st.lists(st.sampled_from(list(Answer)), min_size=1, max_size=6))
    @guarded
    def worker_sends(self, answers: list[Answer]) -> None:
        """A worker fetches as many messages as `answers` has and sends them; the provider
        answers its calls in that order. (With nothing queued, time first runs on to the
        next due row and the scheduler ticks.)"""
        self._await_work()
        self._work(self.broker.take(len(answers)), answers)

    @precondition(lambda self: self.signed_up)
    @rule(take=st.integers(1, 4))
    @guarded
    def worker_dies_after_claim(self, take: int) -> None:
        """A worker fetches messages, claims the rows, and is killed before anything else."""
        self._await_work()
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
        self._acknowledged(contact_id, None)

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
        self._next_due()
        self._work_all()

    @precondition(lambda self: self.signed_up)
    @rule(pick=st.integers(0, 100), everything=st.booleans())
    @guarded
    def unsubscribe(self, pick: int, everything: bool) -> None:
        """The subscriber of the `pick`th enrollment unsubscribes from everything, or
        leaves that enrollment's sequence."""
        self._stop(pick, everything=everything)

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
        self._await_work()
        ids = self.broker.take(len(answers))
        with self.sessions() as session:
            rows = [r for r in _rows(session) if r.id in ids and r.status is S.QUEUED]
            if not rows:
                self._work(ids, answers)
                return
            row = rows[pick % len(rows)]
            public_id = session.get_one(Contact, row.contact_id).public_id
        sequence_id = None if everything else row.sequence_id
        self.store.between = lambda: self._stop_contact(public_id, row.contact_id, sequence_id)
        try:
            self._work(ids, answers)
        finally:
            self.store.between = None

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
            found = _enrollment(session, pick, EnrollmentStatus.COMPLETED if finished else None)
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
            failed = [r for r in _rows(session) if r.status is S.FAILED]
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
        self._enqueue([delivery_id])

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
            evented = _evented(session)
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
                if delivery_id not in evented:
                    self.excused[delivery_id] += 1
            self._enqueue(ids)

    @rule(
        sequence=st.sampled_from(SEQUENCES),
        kind=st.sampled_from(["remove", "insert", "rename"]),
        position=st.integers(0, 5),
        delay=st.sampled_from(["0s", "10m", "1h", "1d"]),
    )
    @guarded
    def edit_sequence(self, sequence: str, kind: str, position: int, delay: str) -> None:
        """A marketer removes, inserts or renames a step; the files are reloaded and given
        to the sender and the scheduler, as a restart would."""
        steps = list(self.files.steps[sequence])
        if kind == "insert":
            at = position % (len(steps) + 1)
            template = TEMPLATES[1 + position % 2]
            steps.insert(at, StepSpec(self.files.new_step_id(), delay, template))
        elif kind == "remove" and len(steps) > 1:
            del steps[position % len(steps)]
        else:
            at = position % len(steps)
            old = steps[at]
            steps[at] = StepSpec(self.files.new_step_id(), old.delay, old.template)
        self.files.edit(sequence, steps)
        self.catalog = self.files.load()
        self.sender.catalog = self.catalog
        assert self.scheduler is not None
        self.scheduler.catalog = self.catalog

    @rule(refusals=st.integers(1, 3))
    @guarded
    def redis_refuses(self, refusals: int) -> None:
        """Redis goes down for a moment: it refuses the next `refusals` enqueues."""
        self.broker.refusals = refusals

    # Invariants -------------------------------------------------------------------------

    @invariant()
    @guarded
    def promises_hold(self) -> None:
        """The promises that hold after every step (see the module docstring)."""
        if self.scheduler is None:
            return
        with self.sessions() as session:
            rows = {row.id: row for row in _rows(session)}
            self._check_exactly_once(rows)
            self._check_nothing_after_a_stop(rows)
            self._check_rows(rows)
            self._check_plan_and_stats_agree(session, rows)

    # Steps shared by the rules ----------------------------------------------------------

    def _enqueue(self, ids: list[int]) -> None:
        enqueue_after_commit(self.broker.enqueue, self.sessions, ids, clock=self.clock)

    def _tick(self) -> None:
        """A scheduler tick, checking what it did to the rows left in `sending`."""
        assert self.scheduler is not None
        with self.sessions() as session:
            before = {r.id: r for r in _rows(session) if r.status is S.SENDING}
            evented = _evented(session)
            mark = _line_mark(session)
        self.scheduler.tick()
        now = self.clock()
        with self.sessions() as session:
            after = {r.id: r for r in _rows(session)}
            moved = _lines_moved(session, mark)
        for delivery_id in before:
            status = after[delivery_id].status
            if status is S.SENT:
                assert delivery_id in evented, f"delivery {delivery_id} settled as sent unseen"
            elif status in (S.QUEUED, S.SCHEDULED, S.FAILED):  # scheduled: Redis refused
                assert delivery_id not in evented, (
                    f"delivery {delivery_id} has a processed event, yet the scheduler "
                    f"moved it to {status} instead of settling it as sent"
                )
                kind, since = self.sending_since[delivery_id]
                wait = SEND_LEASE if kind == "claim" else AMBIGUOUS_WAIT
                assert now - since > timedelta(seconds=wait), (
                    f"delivery {delivery_id} ({kind} at {since}) was taken back from "
                    f"sending at {now}, before its {wait:.0f}s wait ran out"
                )
                if status is not S.FAILED:
                    self.excused[delivery_id] += 1
            event(f"tick: sending -> {status}")
        ended_lines = {r.enrollment_id for r in before.values() if r.on_the_line}
        _check_only_ended_lines_move(moved, ended_lines, "a scheduler tick")

    def _work(self, ids: list[int], answers: list[Answer]) -> None:
        """A worker's batch, as the actor runs it: retries and next steps enqueued."""
        if not ids:
            return
        with self.sessions() as session:
            before = {r.id: r for r in _rows(session)}
            mark = _line_mark(session)
        claimable = [before[i] for i in set(ids) if before[i].status is S.QUEUED]
        now = self.clock()
        self.provider.script = list(answers)
        died = False
        try:
            results = self.sender.send_batch(ids)
        except WorkerKilled:
            died, results = True, {}
        finally:
            self.provider.script = []
        with self.sessions() as session:
            after = {r.id: r for r in _rows(session)}
            moved = _lines_moved(session, mark)
        for row in claimable:
            if after[row.id].status is S.SENDING:
                self.sending_since[row.id] = ("claim" if died else "lost", now)
        _check_only_ended_lines_move(
            moved, {r.enrollment_id for r in claimable if r.on_the_line}, "a worker's batch"
        )
        for result in results.values():
            event(f"send: {result.outcome}")
        if died:
            event("send: the worker died")
        again = [d for d, r in results.items() if r.outcome is Outcome.RETRY]
        following = [r.next_delivery for r in results.values() if r.next_delivery is not None]
        for batch in (again, following):
            if batch:
                with contextlib.suppress(ConnectionError):  # the leases bring them back
                    self.broker.enqueue(batch)

    def _next_due(self) -> None:
        """Move the clock to the next due row (and past the recovery interval); tick."""
        with self.sessions() as session:
            due = session.scalar(
                select(func.min(Delivery.due_at)).where(
                    Delivery.status == S.SCHEDULED,
                    Delivery.sequence_id.not_in(select(SequenceState.sequence_id)),
                )
            )
        if due is not None and due > self.clock():
            self.clock.now = due
        self.clock.advance(6)
        self._tick()

    def _await_work(self) -> None:
        """With nothing queued, let time run on to the next due row."""
        if not self.broker.messages:
            self._next_due()

    def _work_all(self) -> None:
        """Send every queued message, the provider accepting all."""
        for _ in range(50):
            if not self.broker.messages:
                return
            self._work(self.broker.take(25), [])

    def _stop(self, pick: int, *, everything: bool) -> None:
        """Unsubscribe the contact of the `pick`th enrollment, or have it leave that
        enrollment's sequence; then check what it left."""
        with self.sessions() as session:
            found = _enrollment(session, pick)
        if found is not None:
            contact, sequence = found
            self._stop_contact(contact.public_id, contact.id, None if everything else sequence)

    def _stop_contact(self, public_id: str, contact_id: int, sequence_id: str | None) -> None:
        now = self.clock()
        with transaction(self.sessions) as session:
            if sequence_id is None:
                assert unsubscribe_contact(session, public_id, reason="one click", now=now)
            else:
                assert leave_sequence(session, public_id, sequence_id, now=now)
        self._acknowledged(contact_id, sequence_id)

    def _acknowledged(self, contact_id: int, sequence_id: str | None) -> None:
        """Record a stop just committed, and check that it left nothing scheduled or queued."""
        with self.sessions() as session:
            rows = [
                r
                for r in _rows(session)
                if r.contact_id == contact_id and sequence_id in (None, r.sequence_id)
            ]
        self.stops.append(
            Stop(self.ledger.tick(), contact_id, sequence_id, frozenset(r.id for r in rows))
        )
        left = [
            (r.id, r.step_id, r.status.value) for r in rows if r.status in (S.SCHEDULED, S.QUEUED)
        ]
        for row in rows:
            if row.status in (S.SENDING, S.FAILED):
                event(f"stop: a {'resend' if row.resend else 'planned row'} is {row.status}")
        assert not left, f"an acknowledged stop left rows pending: {left}"

    def _drain(self) -> None:
        """Run on with a healthy provider and Redis until nothing is pending."""
        self.broker.refusals = 0
        with transaction(self.sessions) as session:
            for sequence_id in SEQUENCES:
                resume_sequence(session, sequence_id, by="ops", reason="drain", now=self.clock())
        for _ in range(100):
            with self.sessions() as session:
                pending = [r for r in _rows(session) if r.status in PENDING]
            if not pending and not self.broker.messages:
                return
            waiting = [r.due_at for r in pending if r.status is S.SCHEDULED]
            if pending and len(waiting) == len(pending):
                self.clock.now = max(self.clock.now, min(waiting))
            else:  # past every lease and wait
                self.clock.advance(AMBIGUOUS_WAIT + 1)
            self.clock.advance(6)
            self._tick()
            self._work_all()
        stuck = [(r.id, r.step_id, r.status.value) for r in pending]
        raise AssertionError(f"rows stuck after draining: {stuck}")

    # Checks -----------------------------------------------------------------------------

    def _check_exactly_once(self, rows: dict[int, Row]) -> None:
        for delivery_id, times in self.ledger.counts().items():
            allowed = 1 + self.excused[delivery_id]
            row = rows[delivery_id]
            key = (row.enrollment_id, row.step_id, row.resend_number)
            assert times <= allowed, (
                f"(enrollment, step, resend number) {key} was accepted {times} times "
                f"(allowed {allowed}: resent blind {allowed - 1} times)"
            )
        for row in rows.values():
            if row.status is S.SENT:
                assert row.id in self.ledger.counts(), f"row {row.id} says sent, never accepted"

    def _check_nothing_after_a_stop(self, rows: dict[int, Row]) -> None:
        for at, delivery_id, _ in self.ledger.accepted:
            row = rows[delivery_id]
            for stop in self.stops:
                if stop.contact_id != row.contact_id or stop.at > at:
                    continue
                if stop.sequence_id not in (None, row.sequence_id):
                    continue
                # A signup after the stop asks to confirm: a confirmation is then the new
                # request's answer (an older one that was in flight counts as it).
                asked_later = row.step_id == CONFIRM_STEP and any(
                    stop.at < signed < at
                    and (contact, sequence) == (row.contact_id, row.sequence_id)
                    for signed, contact, sequence in self.signups
                )
                assert asked_later, (
                    f"delivery {row.id} ({row.sequence_id}/{row.step_id}) was accepted after "
                    f"the contact's acknowledged "
                    + ("unsubscribe" if stop.sequence_id is None else "leave")
                )

    def _check_rows(self, rows: dict[int, Row]) -> None:
        lines: dict[int, list[Row]] = defaultdict(list)
        for row in rows.values():
            if row.status in (S.FAILED, S.CANCELLED, S.SKIPPED):
                assert row.error, f"row {row.id} is {row.status} without a reason"
            if row.on_the_line:
                lines[row.enrollment_id].append(row)
        for enrollment_id, line in lines.items():
            pending = [(r.id, r.step_id) for r in line if r.status in PENDING]
            assert len(pending) <= 1, f"enrollment {enrollment_id} has {pending} pending"
            latest = max(r.id for r in line)
            planned_past = [r.id for r in line if r.status is S.FAILED and r.id != latest]
            assert not planned_past, (
                f"enrollment {enrollment_id}: its line went on past failed rows {planned_past}"
            )

    def _check_plan_and_stats_agree(self, session: Session, rows: dict[int, Row]) -> None:
        """`drip sequences plan` and `drip stats` against the worker's progress rule."""
        enrollments = session.execute(
            select(Enrollment.id, Enrollment.sequence_id, Enrollment.status)
        ).all()
        progress = read_progress_many(session, [e.id for e in enrollments])
        expected: dict[str, Counter[tuple[str | None, str | None]]] = defaultdict(Counter)
        for enrollment_id, sequence_id, status in enrollments:
            if status is not EnrollmentStatus.ACTIVE:
                continue
            sequence = self.catalog.get(sequence_id).definition
            current = progress[enrollment_id]
            pending = next(iter(current.pending), None)
            if pending is not None and sequence.step(pending) is not None:
                coming: str | None = pending
            else:
                step = next_step(sequence, current.passed)
                coming = step.id if step else None
            expected[sequence_id][(pending, coming)] += 1
        for impact in plan_changes(session, self.catalog, now=self.clock()):
            shown: Counter[tuple[str | None, str | None]] = Counter()
            for group in impact.groups:
                shown[(group.pending, group.next_step)] += group.people
            assert shown == expected[impact.sequence_id], (
                f"plan for {impact.sequence_id} shows {dict(shown)}, the worker's progress "
                f"says {dict(expected[impact.sequence_id])}"
            )
        sent_lines: Counter[tuple[str, str]] = Counter(
            (r.sequence_id, r.step_id)
            for r in rows.values()
            if r.status is S.SENT and r.on_the_line
        )
        for line in funnel(session, self.catalog):
            if line.step == CONFIRM_STEP:
                continue
            waiting = sum(
                line.step in progress[e.id].pending
                for e in enrollments
                if e.sequence_id == line.sequence
            )
            passed = sum(
                line.step in progress[e.id].passed
                for e in enrollments
                if e.sequence_id == line.sequence
            )
            assert line.counts["scheduled"] == waiting, (
                f"stats count {line.counts['scheduled']} pending at {line.sequence}/{line.step}, "
                f"progress says {waiting}"
            )
            assert line.counts["sent"] == sent_lines[(line.sequence, line.step)] <= passed, (
                f"stats count {line.counts['sent']} sent at {line.sequence}/{line.step}; "
                f"{sent_lines[(line.sequence, line.step)]} planned rows are sent, "
                f"{passed} subscribers are past it"
            )

    def _check_end_state(self) -> None:
        with self.sessions() as session:
            rows = {row.id: row for row in _rows(session)}
            unsettled = [(r.id, r.status.value) for r in rows.values() if r.status not in SETTLED]
            assert not unsettled, f"rows not settled at the end: {unsettled}"
            self._check_exactly_once(rows)
            self._check_nothing_after_a_stop(rows)
            self._check_rows(rows)
            self._check_plan_and_stats_agree(session, rows)


@dataclass(frozen=True)
class LineMark:
    """Where the planned lines stood before a step: the highest row id, and which
    enrollments were active."""

    highest: int
    active: frozenset[int]


def _line_mark(session: Session) -> LineMark:
    active = session.scalars(
        select(Enrollment.id).where(Enrollment.status == EnrollmentStatus.ACTIVE)
    )
    return LineMark(_highest_id(session), frozenset(active))


def _lines_moved(session: Session, mark: LineMark) -> dict[int, str]:
    """The enrollments whose line moved since `mark`, and how: a new planned row, or
    completion."""
    moved = {
        d.enrollment_id: f"planned {d.step_id}"
        for d in session.scalars(select(Delivery).where(Delivery.id > mark.highest))
        if on_the_line(resend=d.resend, step_id=d.step_id)
    }
    completed = session.scalars(
        select(Enrollment.id).where(
            Enrollment.status == EnrollmentStatus.COMPLETED, Enrollment.id.in_(mark.active)
        )
    )
    return moved | {enrollment_id: "completed" for enrollment_id in completed}


def _check_only_ended_lines_move(moved: dict[int, str], ended_lines: set[int], what: str) -> None:
    """Only an enrollment whose planned row ended here may move on here (a next planned
    row, or completion): a resend or a confirmation never moves the line."""
    stray = {e: how for e, how in moved.items() if e not in ended_lines}
    assert not stray, f"{what} moved lines {stray} though no planned row of theirs ended"


def _rows(session: Session) -> list[Row]:
    return [
        Row(
            d.id,
            d.enrollment_id,
            d.contact_id,
            d.sequence_id,
            d.step_id,
            d.resend_number,
            d.resend,
            d.status,
            d.error,
            d.due_at,
            d.lease_until,
        )
        for d in session.scalars(select(Delivery).order_by(Delivery.id))
    ]


def _evented(session: Session) -> set[int]:
    found = session.scalars(
        select(ProviderEvent.delivery_id).where(ProviderEvent.event == "processed")
    )
    return {d for d in found if d is not None}


def _highest_id(session: Session) -> int:
    return session.scalar(select(func.max(Delivery.id))) or 0


def _enrollment(
    session: Session, pick: int, status: EnrollmentStatus | None = None
) -> tuple[Contact, str] | None:
    """The contact and sequence of the `pick`th enrollment (modulo their number), of those
    in `status` if given."""
    query = select(Contact, Enrollment.sequence_id).join(
        Enrollment, Enrollment.contact_id == Contact.id
    )
    if status is not None:
        query = query.where(Enrollment.status == status)
    found = session.execute(query.order_by(Enrollment.id)).all()
    if not found:
        return None
    contact, sequence_id = found[pick % len(found)]
    return contact, sequence_id


def _email(who: int) -> str:
    return f"person{who}@example.com"


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql.encode())


@pytest.mark.integration
@pytest.mark.timeout(0 if PROFILE.endswith("fuzz") else 900)  # a found bug takes minutes to shrink
def test_the_delivery_state_machine_keeps_its_promises(pg_template: str) -> None:
    """Random interleavings of every actor keep every promise (see the module docstring)."""
    DeliveryModel.databases = Databases(pg_template)
    REACHED.clear()
    chosen = settings.get_profile(PROFILE)
    if not SHRINK:
        chosen = settings(chosen, phases=[p for p in Phase if p is not Phase.shrink])
    try:
        run_state_machine_as_test(DeliveryModel, settings=chosen)
    finally:
        DeliveryModel.databases.close()
    if os.environ.get("DRIP_STATE_MODEL_STATS"):
        print("\n".join(f"{n:6d}  {what}" for what, n in sorted(REACHED.items())))


@pytest.mark.integration
def test_a_retry_never_resends_a_row_reported_processed(pg_template: str) -> None:
    """Found by the search: `drip retry` queued a row failed for review again although
    the provider's processed event for it had come since, and the worker sent it twice."""
    # Given a send whose answer was lost, failed for review when no event came in time
    DeliveryModel.databases = Databases(pg_template)
    model = DeliveryModel()
    try:
        model.start(policy=AmbiguousPolicy.REVIEW, signups=[(0, "other")])
        model.worker_sends(answers=[Answer.LOST])
        model.time_passes(seconds=AMBIGUOUS_WAIT + 1)
        model.scheduler_tick()
        # When its processed event comes late and an operator retries the failed rows
        model.processed_event(pick=0)
        model.operator_retry(status=S.FAILED)
        model.worker_sends(answers=[Answer.ACCEPT])
        # Then the provider was not given it a second time
        model.promises_hold()
    finally:
        model.broken = True  # no drain: this test is about the one row
        model.teardown()
        DeliveryModel.databases.close()


@pytest.mark.integration
def test_a_resend_never_reaches_who_left_the_sequence(pg_template: str) -> None:
    """Found by the search: leaving a sequence after its last email left the enrollment
    completed, and a resend of that sequence passed the send-time check."""
    # Given a subscriber who received the whole one-step sequence, then left it
    DeliveryModel.databases = Databases(pg_template)
    model = DeliveryModel()
    try:
        model.start(policy=AmbiguousPolicy.RESEND, signups=[(0, "other")])
        model.healthy_hour()
        model.unsubscribe(pick=0, everything=False)
        # When an operator resends its step
        model.operator_resend(pick=0, step=0, finished=False)
        model.healthy_hour()
        # Then nothing of that sequence was accepted after the leave
        model.promises_hold()
    finally:
        model.broken = True
        model.teardown()
        DeliveryModel.databases.close()
