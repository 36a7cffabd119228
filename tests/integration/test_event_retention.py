"""Event retention on a real PostgreSQL (and SQLite): partitions created ahead by the
scheduler's job, events landing in their month and counted as they are stored, old
partitions dropped, the funnel and the counts unchanged across a prune, idempotent storage
across partitions, and `drip db prune --dry-run`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from drip.cli.main import app
from drip.config import Settings
from drip.db import transaction, utcnow
from drip.dispatch.recovery import Recovery
from drip.events.store import store_events
from drip.migrate import upgrade_database
from drip.models import Delivery, DeliveryStatus, ProviderEvent, ProviderEventId
from drip.reports.counting import EVENT_MEASURES, MACHINE_OPENED
from drip.reports.counts import read_counts
from drip.reports.funnel import funnel
from drip.retention.partitions import partitions
from drip.retention.prune import prune
from drip.retention.recovery import keep_event_retention
from drip.runtime import Runtime, build_runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from tests.integration.test_processes import settings_env

#: Old events: January 2026, far past a 180-day retention at PRUNE_AT.
OLD = datetime(2026, 1, 15, 12, tzinfo=UTC)
#: Events of a day counted at PRUNE_AT but within the retention: kept raw and counted.
COUNTED = datetime(2026, 9, 10, 12, tzinfo=UTC)
#: Recent events, of a day counted at PRUNE_AT, in a month that is kept.
RECENT = datetime(2026, 11, 20, 12, tzinfo=UTC)
PRUNE_AT = datetime(2026, 11, 25, 12, tzinfo=UTC)
RETENTION = timedelta(days=180)


def recovery(runtime: Runtime, now: datetime) -> Recovery:
    """What the scheduler hands its jobs, at `now`."""
    s = runtime.settings
    return Recovery(
        sessions=runtime.sessions,
        catalog=runtime.catalog,
        enqueue=runtime.enqueue,
        now=now,
        batch_size=100,
        queue_lease=s.queue_lease,
        ambiguous_policy=s.ambiguous_policy,
        confirmation_ttl=s.confirmation_ttl,
        event_retention=RETENTION,
    )


def sent_deliveries(runtime: Runtime, count: int, *, at: datetime) -> list[int]:
    """`count` subscribers enrolled at `at`, their first email marked sent."""
    ids = []
    with transaction(runtime.sessions) as session:
        for n in range(count):
            enroll_contact(
                session,
                SignupRequest(email=f"reader{n}@example.com"),
                catalog=runtime.catalog,
                default_sequence="quick",
                now=at,
                queue_lease=30,
            )
        session.execute(
            update(Delivery).values(status=DeliveryStatus.SENT, sent_at=at, lease_until=None)
        )
        ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))
    return ids


def event(delivery_id: int, name: str, sg_id: str, **extra: object) -> dict[str, object]:
    """A SendGrid event about a delivery."""
    return {
        "sg_event_id": sg_id,
        "event": name,
        "delivery_id": str(delivery_id),
        "email": "reader@example.com",
        "timestamp": 1_768_478_400,
        **extra,
    }


def store(runtime: Runtime, events: list[dict[str, object]], *, at: datetime) -> list[int]:
    """Store the events as the webhook would at `at`; mark them applied."""
    with transaction(runtime.sessions) as session:
        stored = store_events(session, events, now=at)
        session.execute(update(ProviderEvent).values(processed_at=at))
    return stored


def step_counts(runtime: Runtime) -> list[dict[str, object]]:
    """The funnel as `drip stats --json` prints it."""
    with runtime.sessions() as session:
        return [line.as_dict() for line in funnel(session, runtime.catalog)]


def event_counts(runtime: Runtime) -> int:
    """Every kept count of a provider event (firsts and first machine opens)."""
    measures = {*EVENT_MEASURES.values(), MACHINE_OPENED}
    with runtime.sessions() as session:
        return sum(n for (_, _, m), n in read_counts(session).items() if m in measures)


def history(runtime: Runtime) -> list[int]:
    """Three subscribers' events across January, September and November: a delivery opened
    in two months (one open counted), a machine open, a bounce, clicks."""
    first, second, third = sent_deliveries(runtime, 3, at=OLD - timedelta(days=1))
    store(
        runtime,
        [
            event(first, "delivered", "a-1"),
            event(first, "open", "a-2"),
            event(second, "delivered", "b-1"),
            event(second, "open", "b-2", sg_machine_open=True),
            event(third, "bounce", "c-1"),
        ],
        at=OLD,
    )
    store(runtime, [event(third, "delivered", "c-2"), event(third, "open", "c-3")], at=COUNTED)
    store(
        runtime,
        [
            event(first, "open", "a-3"),
            event(first, "click", "a-4"),
            event(second, "open", "b-3"),
            event(second, "open", "b-4", sg_machine_open=True),
        ],
        at=RECENT,
    )
    # And one of the day of the prune, not counted yet: read raw.
    store(runtime, [event(third, "click", "c-4")], at=PRUNE_AT - timedelta(hours=2))
    return [first, second, third]


def test_the_job_creates_partitions_ahead_and_an_event_lands_in_its_month(
    runtime: Runtime,
) -> None:
    # Given the scheduler's retention job run in January 2026
    keep_event_retention(recovery(runtime, OLD))
    with runtime.sessions() as session:
        months = partitions(session)
    # Then January and the three months after it have their partitions
    assert {f"{m:%Y-%m}" for m in months} >= {"2026-01", "2026-02", "2026-03", "2026-04"}
    # When an event arrives in February, it is stored in February's partition
    (delivery,) = sent_deliveries(runtime, 1, at=OLD)
    (stored,) = store(runtime, [event(delivery, "delivered", "x-1")], at=OLD + timedelta(days=31))
    with runtime.sessions() as session:
        table = session.execute(
            text("SELECT tableoid::regclass::text FROM provider_events WHERE id = :id"),
            {"id": stored},
        ).scalar()
    assert table == "provider_events_y2026m02"


def test_the_job_runs_at_most_daily(runtime: Runtime) -> None:
    keep_event_retention(recovery(runtime, OLD))
    with transaction(runtime.sessions) as session:
        session.execute(text("DROP TABLE provider_events_y2026m03"))
    # A second run the same day does nothing; a day later it creates what is missing again.
    keep_event_retention(recovery(runtime, OLD + timedelta(hours=23)))
    with runtime.sessions() as session:
        assert "2026-03" not in {f"{m:%Y-%m}" for m in partitions(session)}
    keep_event_retention(recovery(runtime, OLD + timedelta(days=1)))
    with runtime.sessions() as session:
        assert "2026-03" in {f"{m:%Y-%m}" for m in partitions(session)}


def test_a_prune_drops_old_partitions_keeps_the_counts_and_the_funnel_reads_the_same(
    runtime: Runtime,
) -> None:
    # Given partitions from January on, and events in January and November
    keep_event_retention(recovery(runtime, OLD))
    history(runtime)
    before = step_counts(runtime)
    welcome = next(line for line in before if line["step"] == "welcome")
    assert (welcome["delivered"], welcome["opened"], welcome["clicked"]) == (3, 3, 2)
    assert (welcome["bounced"], welcome["machine_opened"]) == (1, 1)
    # Every event was counted as it was stored: January's five firsts and one machine open,
    # September's two, November's first click, and the click of the prune's day.
    assert event_counts(runtime) == 5 + 1 + 2 + 1 + 1
    # When the events are pruned at a 180-day retention in late November
    with transaction(runtime.sessions) as session:
        plan = prune(session, now=PRUNE_AT, retention=RETENTION)
    # Then January's partition is gone with its rows and ids, November's rows stay
    assert [f"{m.month:%Y-%m}" for m in plan.months][:1] == ["2026-01"]
    assert plan.events == 5
    with runtime.sessions() as session:
        months = {f"{m:%Y-%m}" for m in partitions(session)}
        assert "2026-01" not in months
        assert session.scalar(select(func.count()).select_from(ProviderEvent)) == 7
        assert session.scalar(select(func.count()).select_from(ProviderEventId)) == 7
    # And the counts and the funnel read exactly what they read before
    assert event_counts(runtime) == 5 + 1 + 2 + 1 + 1
    assert step_counts(runtime) == before


def test_the_same_event_id_is_stored_once_even_a_month_apart(runtime: Runtime) -> None:
    keep_event_retention(recovery(runtime, OLD))
    (delivery,) = sent_deliveries(runtime, 1, at=OLD)
    assert len(store(runtime, [event(delivery, "open", "same")], at=OLD)) == 1
    assert store(runtime, [event(delivery, "open", "same")], at=OLD + timedelta(days=35)) == []
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEvent)) == 1


def test_prune_dry_run_says_what_it_would_remove_and_changes_nothing(
    runtime: Runtime, settings: Settings
) -> None:
    # Given five events received 300 days ago (the command reads the real clock) and two
    # of yesterday
    old = utcnow() - timedelta(days=300)
    keep_event_retention(recovery(runtime, old))
    deliveries = sent_deliveries(runtime, 5, at=old)
    store(runtime, [event(d, "delivered", f"old-{d}") for d in deliveries], at=old)
    yesterday = utcnow() - timedelta(days=1)
    store(runtime, [event(d, "open", f"new-{d}") for d in deliveries[:2]], at=yesterday)
    # When `drip db prune --dry-run` runs, it names the month and changes nothing
    result = CliRunner().invoke(app, ["db", "prune", "--dry-run"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    month = f"{old:%Y-%m}"
    partition = f"provider_events_y{old:%Y}m{old:%m}"
    assert f"would remove provider events of {month}: 5 (partition {partition})" in (result.output)
    assert "would remove 5 provider events and 5 seen event ids" in result.output
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEvent)) == 7
        assert month in {f"{m:%Y-%m}" for m in partitions(session)}
    # Without --dry-run the same command removes them.
    result = CliRunner().invoke(app, ["db", "prune"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert "did remove 5 provider events" in result.output
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEvent)) == 2
        assert month not in {f"{m:%Y-%m}" for m in partitions(session)}


@pytest.fixture
def sqlite_runtime(settings: Settings, tmp_path: Path) -> Iterator[Runtime]:
    """The same service on the embedded SQLite database (events in one plain table)."""
    url = f"sqlite:///{tmp_path / 'drip.db'}"
    upgrade_database(url)
    rt = build_runtime(settings.model_copy(update={"database_url": url}))
    yield rt
    rt.close()


def test_sqlite_prunes_by_deleting_old_rows_and_the_funnel_reads_the_same(
    sqlite_runtime: Runtime,
) -> None:
    runtime = sqlite_runtime
    keep_event_retention(recovery(runtime, OLD))
    history(runtime)
    before = step_counts(runtime)
    with transaction(runtime.sessions) as session:
        plan = prune(session, now=PRUNE_AT, retention=RETENTION)
    assert plan.events == 5
    assert plan.months[0].partition is None
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEvent)) == 7
    assert step_counts(runtime) == before
    # The seen ids of November still keep a replay out.
    assert store(runtime, [event(1, "open", "a-3")], at=PRUNE_AT) == []


def test_an_event_of_a_month_without_partition_waits_in_the_default_and_moves_in_later(
    runtime: Runtime,
) -> None:
    # Given an event received in a month with no partition yet (June 2025)
    june = datetime(2025, 6, 3, tzinfo=UTC)
    (delivery,) = sent_deliveries(runtime, 1, at=june)
    (stored,) = store(runtime, [event(delivery, "delivered", "early")], at=june)
    where = text("SELECT tableoid::regclass::text FROM provider_events WHERE id = :id")
    with runtime.sessions() as session:
        assert session.execute(where, {"id": stored}).scalar() == "provider_events_default"
    # When the job creates that month's partition, the row moves into it
    keep_event_retention(recovery(runtime, june))
    with runtime.sessions() as session:
        assert session.execute(where, {"id": stored}).scalar() == "provider_events_y2025m06"
