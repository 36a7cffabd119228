"""Provider events counted as they are stored (`drip.reports.counting`) equal a scan of the
raw rows by a reference kept here, on a real PostgreSQL (monthly partitions) and on
SQLite: over a random mix of events (duplicates, replays of one `sg_event_id`, events out
of order, machine opens, events about resends and about unknown deliveries, folds), with
and without `since` and `sequence`; the funnel reads the same across a prune; no event is
lost nor counted twice when many webhook batches are stored at once; and migration 0014
carries the former daily counts over without counting a row twice."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.orm import Session

from drip.db import transaction
from drip.events.store import store_events
from drip.migrate import alembic_config, upgrade_database
from drip.models import Delivery, DeliveryStatus, Enrollment, ProviderEvent
from drip.reports.counts import fold_deltas
from drip.reports.funnel import funnel
from drip.retention.partitions import create_ahead
from drip.retention.prune import prune
from drip.runtime import Runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from tests.integration.test_delivery_counts import while_folding
from tests.integration.test_event_retention import sqlite_runtime  # noqa: F401 - a fixture

START = datetime(2026, 1, 5, 9, tzinfo=UTC)
#: The reference's own copy of which provider events the funnel shows, and where.
COLUMNS = {"delivered": "delivered", "open": "opened", "click": "clicked", "bounce": "bounced"}
MACHINE = "machine_opened"
#: Events the funnel does not show: stored, never counted.
OTHER = ("processed", "deferred", "dropped", "spamreport")
#: Delivery ids no row has (an event about one is stored, and counts nowhere).
UNKNOWN = (10**12 + 1, 10**12 + 2)

Key = tuple[str, str, str]


def scanned(
    session: Session, *, since: datetime | None = None, sequence: str | None = None
) -> Counter[Key]:
    """The reference: planned deliveries with at least one stored event of each shown name,
    and with an open flagged `sg_machine_open`, read from the raw rows and their payloads
    (not from the marks), by the day the delivery was created (UTC)."""
    planned = {
        row.id: row
        for row in session.execute(
            select(Delivery.id, Delivery.sequence_id, Delivery.step_id, Delivery.created_at).where(
                Delivery.resend.is_(False)
            )
        )
    }
    seen: set[tuple[int, str]] = set()
    for delivery_id, name, payload in session.execute(
        select(ProviderEvent.delivery_id, ProviderEvent.event, ProviderEvent.payload)
    ):
        row = planned.get(delivery_id)
        if row is None:
            continue
        if since is not None and row.created_at.astimezone(UTC).date() < since.date():
            continue
        if sequence is not None and row.sequence_id != sequence:
            continue
        if name in COLUMNS:
            seen.add((delivery_id, COLUMNS[name]))
        if name == "open" and payload.get("sg_machine_open") is True:
            seen.add((delivery_id, MACHINE))
    return Counter(
        (planned[delivery].sequence_id, planned[delivery].step_id, column)
        for delivery, column in seen
    )


def shown(
    runtime: Runtime, *, since: datetime | None = None, sequence: str | None = None
) -> Counter[Key]:
    """The funnel's provider-event columns, as `drip stats` reads them (from the counts)."""
    with runtime.sessions() as session:
        lines = funnel(session, runtime.catalog, since=since, sequence=sequence)
    found: Counter[Key] = Counter()
    for line in lines:
        for column in COLUMNS.values():
            found[(line.sequence, line.step, column)] = line.counts[column]
        found[(line.sequence, line.step, MACHINE)] = line.machine_opened
    return +found


def assert_counts_match(runtime: Runtime, *, days: list[datetime]) -> None:
    """The funnel equals the scan, whole and filtered by each of `days` and by sequence."""
    with runtime.sessions() as session:
        for since in (None, *days):
            for sequence in (None, "quick", "other"):
                expected = +scanned(session, since=since, sequence=sequence)
                assert shown(runtime, since=since, sequence=sequence) == expected, (
                    since,
                    sequence,
                )


def plant(runtime: Runtime, *, people: int, days: int) -> list[int]:
    """`people` subscribers enrolled over `days` days, each with a sent welcome, a second
    step, an email of another sequence, and a sent resend of the welcome for every third,
    each sent three days after it was made; return every delivery id."""
    with transaction(runtime.sessions) as session:
        for n in range(people):
            at = START + timedelta(days=n * days / people)
            enroll_contact(
                session,
                SignupRequest(email=f"e{n}@example.com"),
                catalog=runtime.catalog,
                default_sequence="quick",
                now=at,
                queue_lease=30,
            )
        # Made when its contact enrolled; sent (and due, and last changed) three days later:
        # only the day it was made is the key.
        for row in session.scalars(select(Delivery)).all():
            enrolled = session.get(Enrollment, row.enrollment_id)
            assert enrolled is not None
            row.created_at = enrolled.enrolled_at
            later = row.created_at + timedelta(days=3)
            row.status, row.sent_at, row.due_at, row.updated_at = DeliveryStatus.SENT, *[later] * 3
        for enrollment in session.scalars(select(Enrollment)).all():
            welcome = session.scalars(
                select(Delivery).where(Delivery.enrollment_id == enrollment.id)
            ).first()
            assert welcome is not None
            later = welcome.created_at + timedelta(days=2)
            sent = later + timedelta(days=3)
            other = Enrollment(
                contact_id=enrollment.contact_id, sequence_id="other", enrolled_at=later
            )
            session.add(other)
            session.flush()
            rows = [(enrollment, "second", 0, False), (other, "o1", 0, False)]
            if enrollment.id % 3 == 0:
                rows.append((enrollment, welcome.step_id, 1, True))
            for owner, step, number, resend in rows:
                session.add(
                    Delivery(
                        enrollment_id=owner.id,
                        contact_id=owner.contact_id,
                        sequence_id=owner.sequence_id,
                        step_id=step,
                        run=owner.run,
                        due_at=sent,
                        created_at=later,
                        updated_at=sent,
                        status=DeliveryStatus.SENT,
                        sent_at=sent,
                        resend=resend,
                        resend_number=number,
                    )
                )
        return list(session.scalars(select(Delivery.id)))


def event(delivery: int, name: str, sg_id: str | None, rng: random.Random) -> dict[str, Any]:
    """A SendGrid event; its `timestamp` is anywhere in a week (events come out of order)."""
    body: dict[str, Any] = {
        "event": name,
        "delivery_id": str(delivery),
        "email": "someone@example.com",
        "timestamp": int((START + timedelta(minutes=rng.randint(0, 10_080))).timestamp()),
    }
    if sg_id is not None:
        body["sg_event_id"] = sg_id
    if name == "open" and rng.random() < 0.4:
        body["sg_machine_open"] = True
    return body


def store(runtime: Runtime, events: list[dict[str, Any]], *, at: datetime) -> None:
    """Store a batch as the webhook does at `at`, and mark it applied (as its effects do)."""
    with transaction(runtime.sessions) as session:
        store_events(session, events, now=at)
        session.execute(
            update(ProviderEvent)
            .where(ProviderEvent.processed_at.is_(None))
            .values(processed_at=at)
        )


def run_mix(runtime: Runtime, *, seed: int, batches: int) -> datetime:
    """Store `batches` random batches over about three months; compare now and then; return
    when the last one was stored."""
    rng = random.Random(seed)
    deliveries = plant(runtime, people=24, days=30)
    sent: list[dict[str, Any]] = []
    at = START
    days = [START + timedelta(days=10), START + timedelta(days=25)]
    for n in range(batches):
        batch = []
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            if sent and roll < 0.12:
                batch.append(rng.choice(sent))  # a replay of an event already stored
                continue
            target = rng.choice(UNKNOWN) if roll < 0.17 else rng.choice(deliveries)
            name = rng.choice((*COLUMNS, *COLUMNS, "open", "open", *OTHER))
            sg_id = None if roll > 0.95 else f"sg-{seed}-{n}-{len(batch)}"
            batch.append(event(target, name, sg_id, rng))
        sent.extend(batch)
        store(runtime, batch, at=at)
        at += timedelta(minutes=rng.randint(10, 2_000))
        if rng.random() < 0.2:
            with transaction(runtime.sessions) as session:
                fold_deltas(session)
        if n % 25 == 24:
            assert_counts_match(runtime, days=days)
    assert_counts_match(runtime, days=days)
    with runtime.sessions() as session:
        expected = scanned(session)
    # Every column held something, in both sequences, so every rule was compared.
    assert {column for _, _, column in expected} == {*COLUMNS.values(), MACHINE}
    assert {seq for seq, _, _ in expected} == {"quick", "other"}
    return at


def prune_keeps_the_funnel(runtime: Runtime, *, last: datetime) -> None:
    """Prune at a retention that removes January and February: the funnel is unchanged."""
    before = shown(runtime)
    march = datetime(2026, 3, 1, tzinfo=UTC)
    now = last + timedelta(days=1)
    with transaction(runtime.sessions) as session:
        plan = prune(session, now=now, retention=now - march)
    assert [f"{m.month:%m}" for m in plan.months] == ["01", "02"]
    assert plan.events > 0
    with runtime.sessions() as session:
        oldest = session.scalar(select(func.min(ProviderEvent.received_at)))
    assert oldest is not None
    assert oldest >= march
    assert shown(runtime) == before
    with transaction(runtime.sessions) as session:
        fold_deltas(session)
    assert shown(runtime) == before


@pytest.mark.parametrize("seed", [1, 2])
def test_counts_equal_a_scan_and_survive_a_prune_on_postgresql(runtime: Runtime, seed: int) -> None:
    # Given monthly partitions from January (events land in January to April)
    with transaction(runtime.sessions) as session:
        create_ahead(session, now=START)
    # When a random mix of batches is stored, the funnel equals the scan all along
    last = run_mix(runtime, seed=seed, batches=150)
    assert last > datetime(2026, 3, 15, tzinfo=UTC)
    # And a prune dropping January's and February's partitions changes nothing it shows
    prune_keeps_the_funnel(runtime, last=last)


def test_counts_equal_a_scan_and_survive_a_prune_on_sqlite(
    sqlite_runtime: Runtime,  # noqa: F811
) -> None:
    last = run_mix(sqlite_runtime, seed=3, batches=150)
    prune_keeps_the_funnel(sqlite_runtime, last=last)


def test_concurrent_batches_lose_no_event_and_count_none_twice(runtime: Runtime) -> None:
    # Given 30 planned deliveries (and resends)
    deliveries = plant(runtime, people=12, days=3)

    # When eight webhook requests at once store, in batches of three, every delivery's
    # events (each thread its own opens, clicks, deliveries; some ids replayed by all),
    # while the scheduler folds
    def work(thread: int) -> None:
        rng = random.Random(thread)
        events: list[dict[str, Any]] = []
        for delivery in deliveries:
            for name in ("open", "delivered", "click", "open"):
                events.append(event(delivery, name, f"t{thread}-{len(events)}", rng))
            events.append(event(delivery, "bounce", f"shared-{delivery}", rng))
        for n in range(0, len(events), 3):
            store(runtime, events[n : n + 3], at=START + timedelta(hours=1))

    errors = while_folding(runtime, work, threads=8)
    assert errors == []
    # Then every planned delivery counts once per name, folded or not
    with runtime.sessions() as session:
        expected = scanned(session)
        planned = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.resend.is_(False))
        )
    assert sum(n for (_, _, column), n in expected.items() if column == "opened") == planned
    assert shown(runtime) == +expected


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_the_migration_carries_the_daily_counts_over_without_counting_twice(
    runtime: Runtime,
    sqlite_runtime: Runtime,  # noqa: F811
    database: str,
) -> None:
    # Given a database below 0014 holding events: those received before January 20 were
    # counted by the former daily job (its days recorded), those after are raw only; and
    # the counts of events since pruned (in no raw row)
    chosen = runtime if database == "postgresql" else sqlite_runtime
    url = chosen.settings.database_url
    deliveries = plant(chosen, people=10, days=20)
    command.downgrade(alembic_config(url), "0013")
    rng = random.Random(7)
    mark = datetime(2026, 1, 20, tzinfo=UTC)
    for n in range(60):
        name = rng.choice((*COLUMNS, "open", "processed"))
        at = START + timedelta(hours=8 * n)
        store(chosen, [event(rng.choice(deliveries), name, f"m-{n}", rng)], at=at)
    with chosen.sessions() as session:
        before = scanned(session)
    counted_then = Counter[tuple[Any, str, str, str]]()
    with chosen.sessions() as session:
        rows = {row.id: row for row in session.scalars(select(Delivery))}
        for delivery_id, name, first, machine, received in session.execute(
            select(
                ProviderEvent.delivery_id,
                ProviderEvent.event,
                ProviderEvent.first_of_kind,
                ProviderEvent.first_machine_open,
                ProviderEvent.received_at,
            )
        ):
            row = rows.get(delivery_id or 0)
            if row is None or row.resend or received >= mark:
                continue
            key = (row.created_at.astimezone(UTC).date(), row.sequence_id, row.step_id)
            if first:
                counted_then[(*key, name)] += 1
            if machine:
                counted_then[(*key, "machine_open")] += 1
    pruned = (START.date(), "quick", "gone", "delivered")
    counted_then[pruned] += 4
    with transaction(chosen.sessions) as session:
        session.execute(
            insert(_table(session, "provider_event_counts")),
            [
                {"day": d, "sequence_id": s, "step_id": t, "event": e, "deliveries": n}
                for (d, s, t, e), n in counted_then.items()
            ],
        )
        session.execute(
            insert(_table(session, "provider_event_days")),
            [
                {"day": (START + timedelta(days=k)).date(), "counted_at": mark}
                for k in range((mark.date() - START.date()).days)
            ],
        )
    # When it is upgraded, each event counts once: the daily counts, then the raw rows since
    upgrade_database(url)
    expected = before + Counter({("quick", "gone", "delivered"): 4})
    assert shown(chosen) == expected
    # And the trigger it installed counts what comes next
    store(chosen, [event(deliveries[0], "click", "after", rng)], at=mark)
    with chosen.sessions() as session:
        after = scanned(session)
    assert shown(chosen) == after + Counter({("quick", "gone", "delivered"): 4})
    # And taken back below 0014, the daily counts keep only what no raw row holds
    command.downgrade(alembic_config(url), "0013")
    with chosen.sessions() as session:
        kept = session.execute(
            text("SELECT sequence_id, step_id, event, deliveries FROM provider_event_counts")
        ).all()
        assert [tuple(row) for row in kept] == [("quick", "gone", "delivered", 4)]
        assert "delivery_counts" in inspect(session.get_bind()).get_table_names()
    upgrade_database(url)
    assert shown(chosen) == after + Counter({("quick", "gone", "delivered"): 4})


def _table(session: Session, name: str) -> Any:
    """A table of the database as it stands (below 0014 the models no longer describe it)."""
    from sqlalchemy import MetaData, Table

    return Table(name, MetaData(), autoload_with=session.get_bind())
