"""The world the state-machine model (`test_state_model.py`) runs in: one real PostgreSQL
database per run, drip's scheduler and sender on the model's clock, provider and broker
(`state_model_parts`), the model's own record of what it did, the steps its rules share
(a tick, a worker's batch, a drain, a stop, an event posted and applied), and the
invariant that runs the checks (`state_model_checks`) after every step.

The rules themselves are in `state_model_rules` (signups, sends, faults, stops, operators,
edits) and `state_model_reactions` (goals, triggers, conditions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.config import AmbiguousPolicy
from drip.db import create_db_engine, session_factory, transaction
from drip.deliveries.enqueue import enqueue_after_commit
from drip.deliveries.transitions import SETTLED
from drip.dispatch.scheduler import Scheduler, SchedulerPolicy
from drip.models import PENDING, Contact, Delivery, Enrollment, SequenceState
from drip.schedule.pauses import resume_sequence
from drip.send.decisions import DAY
from drip.send.sender import DeliverySender, Outcome, SendPolicy
from drip.sequences.catalog import SequenceCatalog
from drip.unsubscribe.links import Links
from drip.unsubscribe.service import leave_sequence, unsubscribe_contact
from drip.unsubscribe.tokens import TokenSigner
from tests.conftest import TEST_SEQUENCES
from tests.integration.conftest import PG_ADMIN_URL
from tests.integration.state_model_checks import (
    GoalMark,
    Row,
    S,
    Stop,
    check_converted_runs_rest,
    check_exactly_once,
    check_nothing_after_a_goal,
    check_nothing_after_a_stop,
    check_only_ended_lines_move,
    check_plan_and_stats_agree,
    check_rows,
    evented,
    line_mark,
    lines_moved,
    read_rows,
)
from tests.integration.state_model_parts import (
    AMBIGUOUS_WAIT,
    CONDITIONS,
    QUEUE_LEASE,
    SEND_LEASE,
    Answer,
    Broker,
    Clock,
    InterleavedStore,
    Known,
    Ledger,
    ScriptedProvider,
    SequenceFiles,
    WorkerKilled,
)

#: The people who may sign up, and the sequences they may join.
PEOPLE = 6
SEQUENCES = ("quick", "other")

#: `other`'s `reentry:` in a run, and the conditions `quick`'s second and third steps carry.
REENTRIES: tuple[str | dict[str, str], ...] = ("never", "always", {"after": "1d"})
WHEN = st.sampled_from([None, *CONDITIONS])

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
    def run(self: ModelWorld, *args: Any, **kwargs: Any) -> Any:
        event(f"rule: {method.__name__}")
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise

    return run  # type: ignore[return-value]


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
        self._thread.submit(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        """Drop the database made ahead, and wait for every drop."""
        self.give_back(self._next.result())
        self._thread.shutdown(wait=True)

    def _create(self) -> str:
        name = f"drip_model_{uuid.uuid4().hex[:12]}"
        admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return name


class ModelWorld(RuleBasedStateMachine):
    """drip under the model's rules; see `test_state_model`'s docstring for the promises."""

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
        self.reentry: str | dict[str, str] = "never"
        #: Rows in `sending` and since when: ("claim", t) waits SEND_LEASE, ("lost", t)
        #: waits AMBIGUOUS_WAIT before the scheduler may take them back.
        self.sending_since: dict[int, tuple[str, datetime]] = {}
        #: Accepted sends of a row the scheduler may have made blind (resent after its wait).
        self.excused: Counter[int] = Counter()
        self.stops: list[Stop] = []
        self.goals: list[GoalMark] = []
        self.with_event: set[int] = set()
        self.signed_up = False
        #: Each signup: (ledger step, contact id, sequence id).
        self.signups: list[tuple[int, int, str]] = []
        #: What the model told drip about each person, and who each contact id is.
        self.known: dict[int, Known] = {who: Known() for who in range(PEOPLE)}
        self.person: dict[int, int] = {}
        #: Contact events (`POST /v1/events`) seen applied.
        self.applied: set[int] = set()

    # The world's parts ------------------------------------------------------------------

    @initialize(
        policy=st.sampled_from(list(AmbiguousPolicy)),
        signups=st.lists(st.tuples(st.integers(0, PEOPLE - 1), st.sampled_from(SEQUENCES))),
        reentry=st.sampled_from(REENTRIES),
        when=st.tuples(WHEN, WHEN),
        daily_cap=st.sampled_from([0, 0, 2]),
    )
    @guarded
    def start(
        self,
        policy: AmbiguousPolicy,
        signups: list[tuple[int, str]],
        reentry: str | dict[str, str] = "never",
        when: tuple[str | None, str | None] = (None, None),
        daily_cap: int = 0,
    ) -> None:
        """The files of this run (`other`'s re-entry, `quick`'s conditions), the daily
        cap, the scheduler with the ambiguous-send policy of this run, the first signups."""
        self.policy, self.reentry = policy, reentry
        self.files.react(reentry, when)
        self.catalog = self.sender.catalog = self.files.load()
        self.sender.policy = dataclasses.replace(self.sender.policy, daily_cap=daily_cap)
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

    def signup(self, who: int, sequence: str) -> None:
        """The signup rule (`state_model_rules`)."""
        raise NotImplementedError

    def reload(self) -> None:
        """Load the files again and give them to the sender and the scheduler, as a
        restart would."""
        self.catalog = self.files.load()
        self.sender.catalog = self.catalog
        assert self.scheduler is not None
        self.scheduler.catalog = self.catalog

    def teardown(self) -> None:
        """Drain and check the end state (unless a step already failed); drop the database."""
        try:
            if not self.broken and self.scheduler is not None:
                self._drain()
                self._check_end_state()
                with self.sessions() as session:
                    for status in session.scalars(select(Enrollment.status)):
                        event(f"end: enrollment {status}")
                    for row in read_rows(session):
                        event(f"end: {'resend' if row.resend else row.step_id} {row.status}")
        finally:
            self.engine.dispose()
            self.databases.give_back(self.database)
            shutil.rmtree(self.folder, ignore_errors=True)

    # Invariants -------------------------------------------------------------------------

    @invariant()
    @guarded
    def promises_hold(self) -> None:
        """The promises that hold after every step (see `test_state_model`'s docstring)."""
        if self.scheduler is None:
            return
        with self.sessions() as session:
            self._check(session, {row.id: row for row in read_rows(session)})

    def _check(self, session: Session, rows: dict[int, Row]) -> None:
        check_exactly_once(rows, self.ledger, self.excused)
        check_nothing_after_a_stop(rows, self.ledger, self.stops, self.signups)
        check_nothing_after_a_goal(rows, self.ledger, self.goals, self.signups)
        check_converted_runs_rest(session, rows, self.goals)
        check_rows(rows)
        check_plan_and_stats_agree(session, rows, self.catalog, self.clock())

    def _check_end_state(self) -> None:
        with self.sessions() as session:
            rows = {row.id: row for row in read_rows(session)}
            unsettled = [(r.id, r.status.value) for r in rows.values() if r.status not in SETTLED]
            assert not unsettled, f"rows not settled at the end: {unsettled}"
            self._check(session, rows)

    # Steps shared by the rules ----------------------------------------------------------

    def enqueue(self, ids: list[int]) -> None:
        """Enqueue committed `queued` rows as drip does (handed back if Redis refuses)."""
        enqueue_after_commit(self.broker.enqueue, self.sessions, ids, clock=self.clock)

    def tick(self) -> None:
        """A scheduler tick, checking what it did to the rows left in `sending`, and noting
        the contact events its recovery applied."""
        assert self.scheduler is not None
        with self.sessions() as session:
            before = {r.id: r for r in read_rows(session) if r.status is S.SENDING}
            seen = evented(session)
            mark = line_mark(session)
            expected = self.goal_runs(session)
        self.scheduler.tick()
        now = self.clock()
        with self.sessions() as session:
            after = {r.id: r for r in read_rows(session)}
            moved = lines_moved(session, mark)
        for delivery_id in before:
            status = after[delivery_id].status
            if status is S.SENT:
                assert delivery_id in seen, f"delivery {delivery_id} settled as sent unseen"
            elif status in (S.QUEUED, S.SCHEDULED, S.FAILED):  # scheduled: Redis refused
                assert delivery_id not in seen, (
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
        # A trigger the recovery applied starts lines (checked where the model applies one).
        reacted = self.note_applied_events(expected)
        with self.sessions() as session:
            begun = set(
                session.scalars(select(Enrollment.id).where(Enrollment.contact_id.in_(reacted)))
            )
        stray = {e: how for e, how in moved.items() if e not in begun}
        check_only_ended_lines_move(stray, ended_lines, "a scheduler tick")

    def work(self, ids: list[int], answers: list[Answer]) -> None:
        """A worker's batch, as the actor runs it: retries and next steps enqueued; then
        what the batch did to conditional steps and the daily cap is checked."""
        if not ids:
            return
        with self.sessions() as session:
            before = {r.id: r for r in read_rows(session)}
            mark = line_mark(session)
            recent = self.sent_in_the_last_day(session)
        claimable = [before[i] for i in set(ids) if before[i].status is S.QUEUED]
        catalog, now, accepted = self.catalog, self.clock(), len(self.ledger.accepted)
        self.provider.script = list(answers)
        died = False
        try:
            results = self.sender.send_batch(ids)
        except WorkerKilled:
            died, results = True, {}
        finally:
            self.provider.script = []
        with self.sessions() as session:
            after = {r.id: r for r in read_rows(session)}
            moved = lines_moved(session, mark)
        for row in claimable:
            if after[row.id].status is S.SENDING:
                self.sending_since[row.id] = ("claim" if died else "lost", now)
        check_only_ended_lines_move(
            moved, {r.enrollment_id for r in claimable if r.on_the_line}, "a worker's batch"
        )
        sent_now = {d for _, d, _ in self.ledger.accepted[accepted:]}
        self._check_conditions(claimable, after, sent_now, moved, catalog)
        self._check_cap(claimable, sent_now, recent)
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

    def _check_conditions(
        self,
        claimable: list[Row],
        after: dict[int, Row],
        sent_now: set[int],
        moved: dict[int, str],
        catalog: SequenceCatalog,
    ) -> None:
        """A planned row of a step with `when:` is skipped (and its line moves on) when the
        model's record says the condition is false at its send-time check, and only then;
        it is sent only when the condition is true."""
        for row in claimable:
            loaded = catalog.get(row.sequence_id) if row.sequence_id in catalog else None
            step = loaded.definition.step(row.step_id) if loaded else None
            if not row.on_the_line or step is None or step.when is None:
                continue
            holds = CONDITIONS[step.when](self.known[self.person[row.contact_id]])
            ended = after[row.id]
            where = f"delivery {row.id} ({row.sequence_id}/{row.step_id}, when: {step.when})"
            if ended.status is S.SKIPPED and (ended.error or "").startswith("when:"):
                assert not holds, f"{where} was skipped though its condition holds"
                assert row.enrollment_id in moved, f"{where} was skipped; nothing followed it"
                event("condition: false, skipped")
            elif row.id in sent_now:
                assert holds, f"{where} was sent though its condition is false"
                event("condition: true, sent")

    def sent_in_the_last_day(self, session: Session) -> Counter[int]:
        """How many emails each contact has recorded sent in the last day (what the cap counts)."""
        since = self.clock() - DAY
        return Counter(
            session.scalars(
                select(Delivery.contact_id).where(
                    Delivery.status == S.SENT, Delivery.sent_at > since
                )
            )
        )

    def _check_cap(self, claimable: list[Row], sent_now: set[int], recent: Counter[int]) -> None:
        """With a daily cap, no planned email is accepted for a contact whose emails
        recorded sent in the last day already reach the cap.

        (Not yet: that a batch holding two planned emails of one contact keeps within the
        cap, `test_one_batch_keeps_within_the_daily_cap`: the batch reads the sends of
        the last day once, and does not count what it sends itself.)"""
        cap = self.sender.policy.daily_cap
        if not cap:
            return
        for row in claimable:
            if not row.on_the_line:
                continue
            if row.id in sent_now:
                assert recent[row.contact_id] < cap, (
                    f"delivery {row.id} ({row.sequence_id}/{row.step_id}) was accepted for "
                    f"contact {row.contact_id}, who had {recent[row.contact_id]} emails sent "
                    f"in the last day: the daily cap is {cap}"
                )
            elif recent[row.contact_id] >= cap:
                event("cap: a planned row held back")

    def next_due(self) -> None:
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
        self.tick()

    def await_work(self) -> None:
        """With nothing queued, let time run on to the next due row."""
        if not self.broker.messages:
            self.next_due()

    def work_all(self) -> None:
        """Send every queued message, the provider accepting all."""
        for _ in range(50):
            if not self.broker.messages:
                return
            self.work(self.broker.take(25), [])

    def during_a_send(
        self, answers: list[Answer], pick: int, act: Callable[[Row, str], None]
    ) -> None:
        """A worker claims a batch; before its send-time checks, `act` runs for the `pick`th
        row claimed (given the row and its contact's public id); then the worker goes on,
        the provider answering as `answers` says."""
        self.await_work()
        ids = self.broker.take(len(answers))
        with self.sessions() as session:
            rows = [r for r in read_rows(session) if r.id in ids and r.status is S.QUEUED]
            if not rows:
                self.work(ids, answers)
                return
            row = rows[pick % len(rows)]
            public_id = session.get_one(Contact, row.contact_id).public_id
        self.store.between = lambda: act(row, public_id)
        try:
            self.work(ids, answers)
        finally:
            self.store.between = None

    def stop_contact(self, public_id: str, contact_id: int, sequence_id: str | None) -> None:
        """Unsubscribe the contact (`sequence_id` None) or have it leave that sequence;
        then check what it left."""
        now = self.clock()
        with transaction(self.sessions) as session:
            if sequence_id is None:
                assert unsubscribe_contact(session, public_id, reason="one click", now=now)
            else:
                assert leave_sequence(session, public_id, sequence_id, now=now)
        self.acknowledged(contact_id, sequence_id)

    def acknowledged(self, contact_id: int, sequence_id: str | None) -> None:
        """Record a stop just committed, and check that it left nothing scheduled or queued."""
        with self.sessions() as session:
            rows = [
                r
                for r in read_rows(session)
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

    def goal_runs(self, session: Session) -> dict[int, list[GoalMark]]:
        """For each contact event not applied yet, the runs it ends when applied now
        (`state_model_reactions`)."""
        raise NotImplementedError

    def note_applied_events(self, expected: dict[int, list[GoalMark]]) -> set[int]:
        """Note the contact events applied since last asked (by a tick's recovery), with
        the goals `expected` says they reached; their contacts' ids (`state_model_reactions`)."""
        raise NotImplementedError

    def _drain(self) -> None:
        """Run on with a healthy provider and Redis until nothing is pending."""
        self.broker.refusals = 0
        with transaction(self.sessions) as session:
            for sequence_id in SEQUENCES:
                resume_sequence(session, sequence_id, by="ops", reason="drain", now=self.clock())
        for _ in range(100):
            with self.sessions() as session:
                pending = [r for r in read_rows(session) if r.status in PENDING]
            if not pending and not self.broker.messages:
                return
            waiting = [r.due_at for r in pending if r.status is S.SCHEDULED]
            if pending and len(waiting) == len(pending):
                self.clock.now = max(self.clock.now, min(waiting))
            else:  # past every lease and wait
                self.clock.advance(AMBIGUOUS_WAIT + 1)
            self.clock.advance(6)
            self.tick()
            self.work_all()
        stuck = [(r.id, r.step_id, r.status.value) for r in pending]
        raise AssertionError(f"rows stuck after draining: {stuck}")


def contact_of(session: Session, pick: int, status: Any = None) -> tuple[Contact, str] | None:
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


def email_of(who: int) -> str:
    """The address of person `who`."""
    return f"person{who}@example.com"


def admin(sql: str) -> None:
    """Run `sql` on the server's admin database."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql.encode())
