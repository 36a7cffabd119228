"""The funnel's counts kept by triggers equal the funnel counted by scanning raw rows, on a
real PostgreSQL and on SQLite: over a random mix of signups, claims, sends, failures,
retries, unsubscribes and re-subscriptions, conversions, clicks, forgets, deleted
contacts and folds, with and without `since` and `sequence`; and no count is lost when
many workers move rows at once while the scheduler folds."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import ColumnElement, and_, delete, func, inspect, select, update
from sqlalchemy.orm import Session, aliased

from drip.clicks.recording import record_click
from drip.contacts.lifecycle import end_enrollments
from drip.contacts.privacy import forget_contact
from drip.db import transaction
from drip.deliveries.finish import finish_rows
from drip.deliveries.moves import claim_due, claim_to_send, operator_retry, retry_later
from drip.migrate import alembic_config, upgrade_database
from drip.models import (
    PENDING,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryCountDelta,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    LinkClick,
)
from drip.reports.counts import fold_deltas, read_counts
from drip.reports.funnel import MEASURE_COLUMNS, funnel
from drip.runtime import Runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.unsubscribe.service import unsubscribe_contact
from tests.integration.test_event_retention import sqlite_runtime  # noqa: F401 - a fixture

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
#: The columns the counts replace (provider events have their own counts).
COLUMNS = ("scheduled", "sent", "failed", "unsubscribed", "converted", "human_clicks")


def scanned(
    session: Session, *, since: datetime | None = None, sequence: str | None = None
) -> Counter[tuple[str, str, str]]:
    """The reference: the funnel's counted columns by scanning deliveries, clicks, contacts
    and enrolments, by the rules of `drip.reports.counting`, at day granularity."""
    scope: list[ColumnElement[bool]] = [Delivery.resend.is_(False)]
    if since is not None:
        day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        scope.append(Delivery.created_at >= day)
    if sequence is not None:
        scope.append(Delivery.sequence_id == sequence)
    found: Counter[tuple[str, str, str]] = Counter()
    for seq, step, status, n in session.execute(
        select(Delivery.sequence_id, Delivery.step_id, Delivery.status, func.count())
        .where(*scope)
        .group_by(Delivery.sequence_id, Delivery.step_id, Delivery.status)
    ):
        column = "scheduled" if status in PENDING else status.value
        if column in COLUMNS:
            found[(seq, step, column)] += n
    for seq, step, n in session.execute(
        select(Delivery.sequence_id, Delivery.step_id, func.count(func.distinct(Delivery.id)))
        .join(LinkClick, LinkClick.delivery_id == Delivery.id)
        .where(*scope, LinkClick.human.is_(True))
        .group_by(Delivery.sequence_id, Delivery.step_id)
    ):
        found[(seq, step, "human_clicks")] += n

    def last_sent(same_run: bool) -> ColumnElement[bool]:
        later = aliased(Delivery)
        return ~(
            select(later.id)
            .where(
                later.enrollment_id == Delivery.enrollment_id,
                later.status == DeliveryStatus.SENT,
                later.resend.is_(False),
                *([later.run == Delivery.run] if same_run else []),
                (later.sent_at > Delivery.sent_at)
                | ((later.sent_at == Delivery.sent_at) & (later.id > Delivery.id)),
            )
            .exists()
        )

    sent = (*scope, Delivery.status == DeliveryStatus.SENT)
    for column, joined, condition, same_run in (
        (
            "unsubscribed",
            (Contact, Contact.id == Delivery.contact_id),
            Contact.status == ContactStatus.UNSUBSCRIBED,
            False,
        ),
        (
            "converted",
            (
                Enrollment,
                and_(Enrollment.id == Delivery.enrollment_id, Enrollment.run == Delivery.run),
            ),
            Enrollment.status == EnrollmentStatus.CONVERTED,
            True,
        ),
    ):
        for seq, step, n in session.execute(
            select(Delivery.sequence_id, Delivery.step_id, func.count())
            .join(*joined)
            .where(*sent, condition, last_sent(same_run))
            .group_by(Delivery.sequence_id, Delivery.step_id)
        ):
            found[(seq, step, column)] += n
    return found


def counted(
    session: Session, *, since: datetime | None = None, sequence: str | None = None
) -> Counter[tuple[str, str, str]]:
    """What the funnel reads: the kept counts, by funnel column."""
    found: Counter[tuple[str, str, str]] = Counter()
    for (seq, step, measure), n in read_counts(session, since=since, sequence=sequence).items():
        column = MEASURE_COLUMNS.get(measure)
        if column is not None:
            found[(seq, step, column)] += n
    return +found


def assert_counts_match(runtime: Runtime, *, now: datetime) -> set[str]:
    """Counts equal the scan, whole and filtered by `since` and by sequence; return the
    columns that hold something."""
    with runtime.sessions() as session:
        held = {column for (_, _, column), n in scanned(session).items() if n}
        for since in (None, now - timedelta(days=1), now):
            for sequence in (None, "quick", "other"):
                expected = +scanned(session, since=since, sequence=sequence)
                assert counted(session, since=since, sequence=sequence) == expected, (
                    since,
                    sequence,
                )
    return held


def while_folding(
    runtime: Runtime, work: Callable[[int], None], *, threads: int
) -> list[BaseException]:
    """Run `work(0)` .. `work(threads - 1)` at once, each on its own thread, while another
    folds the deltas in a loop; return what they raised."""
    errors: list[BaseException] = []
    done = threading.Event()

    def guarded(thread: int) -> None:
        try:
            work(thread)
        except BaseException as exc:  # surfaced by the caller's assert
            errors.append(exc)

    def fold() -> None:
        while not done.is_set():
            with transaction(runtime.sessions) as session:
                fold_deltas(session)

    workers = [threading.Thread(target=guarded, args=(n,)) for n in range(threads)]
    folder = threading.Thread(target=fold)
    folder.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    folder.join()
    return errors


class Mix:
    """A random mix of the changes the product makes, through its own functions."""

    def __init__(self, runtime: Runtime, seed: int) -> None:
        self.runtime = runtime
        self.random = random.Random(seed)
        self.now = START
        self.people = 0

    def signup(self, session: Session) -> None:
        self.people += 1
        enroll_contact(
            session,
            SignupRequest(email=f"p{self.people}@example.com"),
            catalog=self.runtime.catalog,
            default_sequence="quick",
            now=self.now,
            queue_lease=30,
        )
        if self.random.random() < 0.3:
            # A second sequence's enrolment, made as an import or an API call would.
            contact = session.scalar(select(Contact).order_by(Contact.id.desc()).limit(1))
            assert contact is not None
            enrollment = Enrollment(
                contact_id=contact.id, sequence_id="other", enrolled_at=self.now
            )
            session.add(enrollment)
            session.flush()
            session.add(self._row(enrollment, "o1"))

    def _row(self, enrollment: Enrollment, step: str, **values: object) -> Delivery:
        return Delivery(
            enrollment_id=enrollment.id,
            contact_id=enrollment.contact_id,
            sequence_id=enrollment.sequence_id,
            step_id=step,
            run=enrollment.run,
            due_at=self.now,
            created_at=self.now,
            **values,
        )

    def send(self, session: Session) -> None:
        ids = claim_due(session, now=self.now, limit=self.random.randint(1, 6), queue_lease=30)
        claimed = claim_to_send(session, ids, now=self.now, send_lease=30)
        finishes: dict[int, dict[str, object]] = {}
        for row in claimed:
            roll = self.random.random()
            if roll < 0.15:
                retry_later(
                    session,
                    row.id,
                    now=self.now,
                    lease_until=self.now,
                    attempts=row.attempts,
                    error="try again",
                )
            elif roll < 0.25:
                finishes[row.id] = {"status": DeliveryStatus.FAILED, "error": "refused"}
            else:
                finishes[row.id] = {"status": DeliveryStatus.SENT, "sent_at": self.now}
        finish_rows(session, finishes, now=self.now)
        # The next step of each sent row, as the planner would add it.
        for row in claimed:
            if finishes.get(row.id, {}).get("status") is DeliveryStatus.SENT:
                enrollment = session.get(Enrollment, row.enrollment_id)
                assert enrollment is not None
                step = f"{row.step_id}+"
                if enrollment.status is EnrollmentStatus.ACTIVE and len(step) < 12:
                    session.add(self._row(enrollment, step))

    def send_after_ending(self, session: Session) -> None:
        # A row already sending when its contact unsubscribes or its run converts is sent:
        # the ending is attributed to it, the last email.
        ids = claim_due(session, now=self.now, limit=2, queue_lease=30)
        claimed = claim_to_send(session, ids, now=self.now, send_lease=30)
        if claimed:
            row = claimed[0]
            if self.random.random() < 0.5:
                contact = session.get(Contact, row.contact_id)
                assert contact is not None
                unsubscribe_contact(session, contact.public_id, reason="link", now=self.now)
            else:
                end_enrollments(
                    session,
                    row.contact_id,
                    reason="goal",
                    now=self.now,
                    sequence_id=row.sequence_id,
                    status=EnrollmentStatus.CONVERTED,
                )
        sent = {"status": DeliveryStatus.SENT, "sent_at": self.now}
        finish_rows(session, {row.id: dict(sent) for row in claimed}, now=self.now)

    def drop_last_sent(self, session: Session) -> None:
        # The last sent row of an ended enrolment goes: the one sent before it is the last.
        ended = (
            select(Delivery.id)
            .join(Contact, Contact.id == Delivery.contact_id)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .where(
                Delivery.status == DeliveryStatus.SENT,
                (Contact.status == ContactStatus.UNSUBSCRIBED)
                | (Enrollment.status == EnrollmentStatus.CONVERTED),
            )
            .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
            .limit(1)
        )
        if (found := session.scalar(ended)) is not None:
            session.execute(delete(Delivery).where(Delivery.id == found))

    def resend(self, session: Session) -> None:
        # A resend, sent: off the planned line, so neither counted nor an unsubscribe's email.
        row = session.scalar(select(Delivery).where(Delivery.status == "sent").limit(1))
        enrollment = session.get(Enrollment, row.enrollment_id) if row else None
        if row is not None and enrollment is not None:
            number = 1 + (
                session.scalar(
                    select(func.max(Delivery.resend_number)).where(
                        Delivery.enrollment_id == row.enrollment_id, Delivery.step_id == row.step_id
                    )
                )
                or 0
            )
            values = {"status": DeliveryStatus.SENT, "sent_at": self.now, "resend": True}
            session.add(self._row(enrollment, row.step_id, resend_number=number, **values))

    def some_contact(self, session: Session) -> Contact | None:
        ids = session.scalars(select(Contact.id)).all()
        return session.get(Contact, self.random.choice(ids)) if ids else None

    def unsubscribe(self, session: Session) -> None:
        sent = select(Delivery.contact_id).where(Delivery.status == "sent")
        if mailed := session.scalars(sent).all():
            contact = session.get(Contact, self.random.choice(mailed))
            assert contact is not None
            unsubscribe_contact(session, contact.public_id, reason="link", now=self.now)

    def subscribe_again(self, session: Session) -> None:
        gone = select(Contact.id).where(Contact.status == ContactStatus.UNSUBSCRIBED).limit(1)
        session.execute(
            update(Contact).where(Contact.id.in_(gone)).values(status=ContactStatus.ACTIVE)
        )

    def convert(self, session: Session) -> None:
        mailed = session.execute(
            select(Delivery.contact_id, Delivery.sequence_id).where(Delivery.status == "sent")
        ).all()
        if mailed:
            contact_id, sequence_id = self.random.choice(mailed)
            end_enrollments(
                session,
                contact_id,
                reason="goal",
                now=self.now,
                sequence_id=sequence_id,
                status=EnrollmentStatus.CONVERTED,
            )

    def start_again(self, session: Session) -> None:
        # A converted run re-entered: the next run's row is not the converted one.
        enrollment = session.scalar(
            select(Enrollment).where(Enrollment.status == EnrollmentStatus.CONVERTED).limit(1)
        )
        if enrollment is not None:
            enrollment.run += 1
            enrollment.status = EnrollmentStatus.ACTIVE
            session.flush()
            session.add(self._row(enrollment, f"again{enrollment.run}"))

    def click(self, session: Session) -> None:
        sent = session.scalars(select(Delivery.id).where(Delivery.status == "sent")).all()
        if sent:
            record_click(
                session,
                delivery_id=self.random.choice(sent),
                link_index=self.random.randint(0, 2),
                url="https://example.com/",
                method=self.random.choice(["GET", "GET", "HEAD"]),
                user_agent="Mozilla/5.0",
                now=self.now + timedelta(minutes=5),
            )

    def forget(self, session: Session) -> None:
        if contact := self.some_contact(session):
            forget_contact(session, contact, now=self.now)

    def delete_contact(self, session: Session) -> None:
        if contact := self.some_contact(session):
            session.execute(delete(Contact).where(Contact.id == contact.id))

    def delete_click(self, session: Session) -> None:
        click = session.scalar(select(LinkClick.id).limit(1))
        if click is not None:
            session.execute(delete(LinkClick).where(LinkClick.id == click))

    def retry_failed(self, session: Session) -> None:
        operator_retry(session, [], now=self.now, queue_lease=30, limit=3)

    def fold(self, session: Session) -> None:
        # Bounded folds too: the oldest few moved, the rest left for the next
        fold_deltas(session, limit=self.random.choice([1, 3, 100_000]))

    def step(self) -> None:
        """One random change in its own transaction, a few minutes later."""
        actions = [
            (self.signup, 4),
            (self.send, 6),
            (self.send_after_ending, 1),
            (self.drop_last_sent, 0.5),
            (self.unsubscribe, 1),
            (self.resend, 0.5),
            (self.subscribe_again, 0.5),
            (self.convert, 2),
            (self.start_again, 0.5),
            (self.click, 2),
            (self.forget, 0.5),
            (self.delete_contact, 0.5),
            (self.delete_click, 0.3),
            (self.retry_failed, 0.5),
            (self.fold, 1),
        ]
        action = self.random.choices([a for a, _ in actions], [w for _, w in actions])[0]
        with transaction(self.runtime.sessions) as session:
            action(session)
        self.now += timedelta(minutes=self.random.randint(1, 600))


def run_mix(runtime: Runtime, *, seed: int, steps: int) -> None:
    mix = Mix(runtime, seed)
    held: set[str] = set()
    for n in range(steps):
        mix.step()
        if n % 40 == 39:
            held |= assert_counts_match(runtime, now=mix.now)
    held |= assert_counts_match(runtime, now=mix.now)
    # Then, until every column has held something, signups, sends, conversions,
    # unsubscribes and clicks, so the comparison covers every rule whatever the mix did.
    for _ in range(30):
        if held == set(COLUMNS):
            break
        for action in (mix.signup, mix.send, mix.send, mix.convert, mix.unsubscribe, mix.click):
            with transaction(runtime.sessions) as session:
                action(session)
            mix.now += timedelta(minutes=30)
        held |= assert_counts_match(runtime, now=mix.now)
    assert held == set(COLUMNS)
    with transaction(runtime.sessions) as session:
        fold_deltas(session)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryCountDelta)) == 0
    assert_counts_match(runtime, now=mix.now)


@pytest.mark.parametrize("seed", [1, 2])
def test_counts_equal_a_scan_on_postgresql(runtime: Runtime, seed: int) -> None:
    run_mix(runtime, seed=seed, steps=240)


def test_counts_equal_a_scan_on_sqlite(sqlite_runtime: Runtime) -> None:  # noqa: F811
    run_mix(sqlite_runtime, seed=3, steps=240)


def test_the_funnel_reads_the_counts(runtime: Runtime) -> None:
    # Given a mix of changes, folded and not
    run_mix(runtime, seed=4, steps=80)
    with runtime.sessions() as session:
        expected = +scanned(session)
        lines = funnel(session, runtime.catalog)
    # Then the funnel's columns are the scan's
    shown = Counter(
        {
            (line.sequence, line.step, column): line.counts[column]
            for line in lines
            for column in COLUMNS
        }
    )
    assert +shown == expected


def sign_up(runtime: Runtime, prefix: str, count: int) -> None:
    """`count` signups to `quick` at START, in one transaction."""
    with transaction(runtime.sessions) as session:
        for n in range(count):
            enroll_contact(
                session,
                SignupRequest(email=f"{prefix}{n}@example.com"),
                catalog=runtime.catalog,
                default_sequence="quick",
                now=START,
                queue_lease=30,
            )


def test_concurrent_workers_lose_no_count(runtime: Runtime) -> None:
    # Given 400 queued rows
    sign_up(runtime, "w", 400)
    with transaction(runtime.sessions) as session:
        ids = claim_due(session, now=START, limit=400, queue_lease=30)
        # (a signup whose first email is due now queues it at once)
        ids += session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED)
        ).all()
    ids = sorted(set(ids))
    assert len(ids) == 400

    # When eight workers send them one by one while the scheduler folds
    def work(thread: int) -> None:
        for delivery_id in ids[thread::8]:
            with transaction(runtime.sessions) as session:
                claim_to_send(session, [delivery_id], now=START, send_lease=30)
            with transaction(runtime.sessions) as session:
                status = DeliveryStatus.SENT if delivery_id % 5 else DeliveryStatus.FAILED
                finish_rows(session, {delivery_id: {"status": status}}, now=START)

    errors = while_folding(runtime, work, threads=8)
    assert errors == []
    # Then every move is counted, folded or not
    with runtime.sessions() as session:
        assert counted(session) == +scanned(session)
        assert counted(session)[("quick", "welcome", "sent")] == 320
        assert counted(session)[("quick", "welcome", "failed")] == 80


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_the_migration_counts_the_rows_already_stored(
    runtime: Runtime,
    sqlite_runtime: Runtime,  # noqa: F811
    database: str,
) -> None:
    # Given a mix of changes on a database, taken back below 0013 (no counts, no triggers)
    chosen = runtime if database == "postgresql" else sqlite_runtime
    mix = Mix(chosen, seed=5)
    for _ in range(120):
        mix.step()
    url = chosen.settings.database_url
    command.downgrade(alembic_config(url), "0012")
    with chosen.sessions() as session:
        assert "delivery_counts" not in inspect(session.get_bind()).get_table_names()
    # When it is upgraded again, the stored rows are counted and the triggers kept
    upgrade_database(url)
    assert_counts_match(chosen, now=mix.now)
    for _ in range(40):
        mix.step()
    assert_counts_match(chosen, now=mix.now)


def pending_measures(session: Session) -> tuple[Counter[tuple[str, str, str]], Counter[str]]:
    """The kept counts of the pending measures, and a scan of the pending planned rows by
    status."""
    kept: Counter[tuple[str, str, str]] = Counter()
    for (seq, step, measure), n in read_counts(session).items():
        if measure in {status.value for status in PENDING}:
            kept[(seq, step, measure)] += n
    scan: Counter[str] = Counter()
    for status, n in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.resend.is_(False), Delivery.status.in_(PENDING))
        .group_by(Delivery.status)
    ):
        scan[status.value] += n
    return +kept, +scan


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_migration_0015_merges_the_pending_counts_and_back(
    runtime: Runtime,
    sqlite_runtime: Runtime,  # noqa: F811
    database: str,
) -> None:
    # Given a mix of changes, folded and not, with rows left queued and sending
    chosen = runtime if database == "postgresql" else sqlite_runtime
    mix = Mix(chosen, seed=6)
    for _ in range(80):
        mix.step()
    with transaction(chosen.sessions) as session:
        for _ in range(4):
            mix.signup(session)
        queued = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED)
        ).all()
        claim_to_send(session, list(queued[:2]), now=mix.now, send_lease=30)
    url = chosen.settings.database_url
    for _ in range(2):
        # When it goes down to 0014, each pending status is its own measure again
        command.downgrade(alembic_config(url), "0014")
        with chosen.sessions() as session:
            kept, scan = pending_measures(session)
        assert {status for (_, _, status) in kept} >= {"scheduled", "queued", "sending"}
        by_status: Counter[str] = Counter()
        for (_, _, status), n in kept.items():
            by_status[status] += n
        assert by_status == scan
        assert_counts_match(chosen, now=mix.now)
        # And up to 0015, one measure, and the triggers count what follows
        upgrade_database(url)
        with chosen.sessions() as session:
            kept, scan = pending_measures(session)
        assert {status for (_, _, status) in kept} == {"scheduled"}
        assert sum(kept.values()) == sum(scan.values())
        for _ in range(30):
            mix.step()
        assert_counts_match(chosen, now=mix.now)


def test_a_fold_moves_the_oldest_deltas_up_to_its_limit(runtime: Runtime) -> None:
    # Given 30 signups' deltas not yet folded
    sign_up(runtime, "f", 30)
    with runtime.sessions() as session:
        before = read_counts(session)
        waiting = session.scalar(select(func.count()).select_from(DeliveryCountDelta))
    assert waiting is not None
    assert waiting >= 30
    # When a fold may move ten
    with transaction(runtime.sessions) as session:
        fold_deltas(session, limit=10)
    # Then ten moved, the rest wait, and the funnel reads the same
    with runtime.sessions() as session:
        left = session.scalar(select(func.count()).select_from(DeliveryCountDelta))
        assert left == waiting - 10
        assert read_counts(session) == before
    # And further folds empty the deltas, still reading the same
    with transaction(runtime.sessions) as session:
        fold_deltas(session)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryCountDelta)) == 0
        assert read_counts(session) == before
