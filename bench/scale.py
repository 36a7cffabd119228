"""`python bench/run.py --scale 100000,1000000`: how drip's costs grow with its subscribers.

For each size, a fresh database is seeded through COPY with the sample series in flight:
contacts enrolled uniformly over the last `SPREAD_DAYS` days, each with the deliveries its
enrolment date leaves (the steps already due are sent, the next one is scheduled, nobody is
further than the series' 28 days) and three provider events per sent email (processed,
delivered, open), in monthly partitions. Then, at each size:

- bytes on disk per subscriber, by table (tables, indexes and TOAST, after VACUUM);
- the recovery pass (the first one includes the daily retention run), and a scheduler tick
  that claims and enqueues 1,000 due rows;
- `drip stats` (the whole funnel): one read of the kept `delivery_counts`, which the
  seeding fills by COPY with the deliveries and events (their triggers off, as the rows
  are tallied here) and which is checked against a scan of both tables; timed at its
  first call and as the median of three after the recovery pass;
- `drip contacts show` (one contact's timeline) and `drip sequences plan`;
- `POST /signups` at 100 requests/s for 10 s through `drip api` (2 workers): p50, p99.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from statistics import median
from typing import Any

import psycopg
from harness import (
    REDIS,
    ROOT,
    drip_env,
    drop_database,
    free_port,
    fresh_database,
    healthy,
    open_loop,
    percentile,
    start_provider,
    wait,
)

#: Enrolments spread uniformly over this many days back from now.
SPREAD_DAYS = 35

#: The sample series' ten emails (the reminder variant left out) and their days after signup.
STEPS = (
    ("template-delivery", 0),
    ("executive-summary", 2),
    ("achievements-with-numbers", 4),
    ("write-for-the-role", 7),
    ("leadership-stories", 10),
    ("core-competencies", 13),
    ("length-and-format", 16),
    ("linkedin-alignment", 20),
    ("networking-and-cover-letters", 24),
    ("follow-up", 28),
)

#: The three provider events of every sent email, and their delay after the send.
EVENTS = (("processed", 1), ("delivered", 5), ("open", 7200))

#: The tables whose size is reported (partitions summed into `provider_events`).
TABLES = (
    "contacts",
    "enrollments",
    "deliveries",
    "provider_events",
    "provider_event_ids",
    "delivery_counts",
)

#: This run's database (by process id: two runs at once never share one).
DATABASE = f"drip_bench_scale_sizes_{os.getpid()}"
SEQUENCE = "executive-resume"


def measure(sizes: list[int]) -> list[dict[str, Any]]:
    """Seed and measure each size in turn; one dict of figures per size."""
    results = []
    for size in sizes:
        print(f"  scale {size:,}: seeding...", flush=True)
        url = fresh_database(DATABASE)
        try:
            started = time.perf_counter()
            counts = seed(url, size, now=datetime.now(UTC))
            figures: dict[str, Any] = {"size": size, **counts}
            figures["seed_s"] = time.perf_counter() - started
            figures["bytes"] = sizes_per_subscriber(url, size)
            print(f"  scale {size:,}: seeded in {figures['seed_s']:.0f} s; measuring", flush=True)
            figures.update(timings(url, size))
            figures.update(signup_latency(url))
        finally:
            drop_database(DATABASE)
        print(f"  scale {size:,}: {figures}", flush=True)
        results.append(figures)
    return results


def _people(size: int, now: datetime) -> Iterator[tuple[int, datetime, int]]:
    """(contact id, enrolled at, emails already sent) for each subscriber."""
    spread = SPREAD_DAYS * 86400
    for n in range(1, size + 1):
        enrolled = now - timedelta(seconds=(n * 7919 % size) / size * spread)
        age = (now - enrolled).total_seconds() / 86400
        yield n, enrolled, sum(1 for _, day in STEPS if day <= age)


def seed(url: str, size: int, *, now: datetime) -> dict[str, int]:
    """COPY `size` subscribers with their deliveries and events; counts of what was written."""
    from drip.db import create_db_engine
    from drip.retention.partitions import create_partition, month_of, next_month, partitions

    engine = create_db_engine(url)
    with engine.begin() as connection:
        have = partitions(connection)
        month = month_of(now - timedelta(days=SPREAD_DAYS + 1))
        while month <= month_of(now):
            if month not in have:
                create_partition(connection, month)
            month = next_month(month)
    engine.dispose()
    counts = {"deliveries": 0, "events": 0, "in_flight": 0}
    with psycopg.connect(url) as db:
        with db.cursor().copy(
            "COPY contacts (id, public_id, email, email_hash, attributes, status, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            for n, enrolled, _ in _people(size, now):
                copy.write_row(
                    (
                        n,
                        f"p{n:031d}",
                        f"b{n}@example.com",
                        f"{n:064x}",
                        "{}",
                        "active",
                        *(enrolled,) * 2,
                    )
                )
        with db.cursor().copy(
            "COPY enrollments (id, contact_id, sequence_id, status, enrolled_at) FROM STDIN"
        ) as copy:
            for n, enrolled, sent in _people(size, now):
                status = "completed" if sent == len(STEPS) else "active"
                counts["in_flight"] += status == "active"
                copy.write_row((n, n, SEQUENCE, status, enrolled))
    delivery_id = event_id = 0
    # The funnel's counts, kept by triggers on a live database, are tallied here and copied
    # whole: the seeded deliveries and events go in with the triggers off (`replica`).
    from drip.reports.counting import EVENT_MEASURES

    tally: Counter[tuple[date, str, str]] = Counter()
    # One COPY at a time per connection: the three streams go over three.
    with (
        psycopg.connect(url) as db,
        psycopg.connect(url) as db2,
        psycopg.connect(url) as db3,
    ):
        db.execute("SET session_replication_role = replica")
        db2.execute("SET session_replication_role = replica")
        with (
            db.cursor().copy(
                "COPY deliveries (id, enrollment_id, contact_id, sequence_id, step_id,"
                " resend_number, resend, status, due_at, attempts, sent_at,"
                " provider_message_id, sequence_version, created_at, updated_at) FROM STDIN"
            ) as deliveries,
            db2.cursor().copy(
                "COPY provider_events (id, sg_event_id, event, delivery_id, payload,"
                " occurred_at, received_at, processed_at, first_of_kind, first_machine_open)"
                " FROM STDIN"
            ) as events,
            db3.cursor().copy(
                "COPY provider_event_ids (sg_event_id, received_at) FROM STDIN"
            ) as ids,
        ):
            for n, enrolled, sent in _people(size, now):
                for index, (step, day) in enumerate(STEPS[: sent + 1]):
                    due = enrolled + timedelta(days=day)
                    delivery_id += 1
                    done = index < sent
                    created = due if index else enrolled
                    tally[(created.date(), step, "sent" if done else "scheduled")] += 1
                    deliveries.write_row(
                        (
                            *(delivery_id, n, n, SEQUENCE, step, 0, False),
                            *("sent" if done else "scheduled", due, 1 if done else 0),
                            *(due if done else None, f"m{delivery_id}" if done else None),
                            *("v1", created, due if done else enrolled),
                        )
                    )
                    if not done:
                        continue
                    for name, delay in EVENTS:
                        event_id += 1
                        at = due + timedelta(seconds=delay)
                        sg = f"e{event_id:020d}"
                        payload = {
                            "event": name,
                            "email": f"b{n}@example.com",
                            "timestamp": int(at.timestamp()),
                            "sg_event_id": sg,
                            "sg_message_id": f"m{delivery_id}.filter0001",
                            "delivery_id": str(delivery_id),
                            "sequence": SEQUENCE,
                            "step": step,
                        }
                        body = json.dumps(payload)
                        events.write_row((event_id, sg, name, delivery_id, body, at, at, at, 1, 0))
                        # Each is its delivery's first of its name (first_of_kind).
                        if name in EVENT_MEASURES:
                            tally[(created.date(), step, EVENT_MEASURES[name])] += 1
                        ids.write_row((sg, at))
        counts["deliveries"], counts["events"] = delivery_id, event_id
    with (
        psycopg.connect(url) as db,
        db.cursor().copy(
            "COPY delivery_counts (day, sequence_id, step_id, measure, n) FROM STDIN"
        ) as copy,
    ):
        for (day, step, measure), n in tally.items():
            copy.write_row((day, SEQUENCE, step, measure, n))
    with psycopg.connect(url) as db:
        for table in ("contacts", "enrollments", "deliveries", "provider_events"):
            db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("VACUUM ANALYZE")
    return counts


def sizes_per_subscriber(url: str, size: int) -> dict[str, float]:
    """Bytes on disk per subscriber, by table (with its indexes and TOAST), after VACUUM."""
    found = {}
    with psycopg.connect(url) as db:
        for table in TABLES:
            row = db.execute(
                "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(t.relid))"
                " FROM pg_partition_tree(c.oid) t) ELSE pg_total_relation_size(c.oid) END"
                " FROM pg_class c WHERE c.oid = %s::regclass",
                (table,),
            ).fetchone()
            found[table] = float(row[0] if row else 0) / size
    found["total"] = sum(found.values())
    return found


def timings(url: str, size: int) -> dict[str, float]:
    """The scheduler, stats, contacts show and sequences plan, timed in one process."""
    from sqlalchemy import select, text

    from drip.config import Settings
    from drip.models import Contact
    from drip.reports.counting import EVENT_MEASURES
    from drip.reports.counts import read_counts
    from drip.reports.funnel import funnel
    from drip.reports.timeline import contact_timeline
    from drip.runtime import build_runtime
    from drip.schedule.impact import plan_changes

    settings = Settings(
        database_url=url,
        redis_url=REDIS,
        redis_namespace="bench-scale-sizes",
        secret_key="bench",
        sequences_dir=ROOT / "sequences",
        scheduler_batch_size=1000,
    )
    runtime = build_runtime(settings)
    out: dict[str, float] = {}
    try:
        with runtime.sessions() as session:
            started = time.perf_counter()
            funnel(session, runtime.catalog)
            out["stats_first_ms"] = (time.perf_counter() - started) * 1000
        scheduler = runtime.scheduler()
        started = time.perf_counter()
        first = scheduler.tick()
        out["first_recovery_ms"] = (time.perf_counter() - started) * 1000
        assert not first.errors, first.errors
        scheduler._next_recovery = None  # the next tick runs the recovery pass again
        started = time.perf_counter()
        scheduler.tick()
        out["recovery_ms"] = (time.perf_counter() - started) * 1000
        with runtime.sessions() as session:
            stats = []
            for _ in range(3):
                started = time.perf_counter()
                funnel(session, runtime.catalog)
                stats.append((time.perf_counter() - started) * 1000)
            out["stats_ms"] = median(stats)
            # The kept counts (plus deltas), checked against a scan of deliveries and events.
            kept = read_counts(session)
            scan = dict(
                session.execute(
                    text("SELECT status, count(*) FROM deliveries WHERE NOT resend GROUP BY 1")
                ).all()
            )
            for name, measure in EVENT_MEASURES.items():
                scan[measure] = session.scalar(
                    text(
                        "SELECT count(DISTINCT delivery_id) FROM provider_events"
                        " WHERE event = :name"
                    ),
                    {"name": name},
                )
            by_measure: Counter[str] = Counter()
            for (_, _, measure), n in kept.items():
                by_measure[measure] += n if measure in scan else 0
            assert by_measure == +Counter(scan), (by_measure, scan)
            middle = session.scalars(select(Contact).where(Contact.id == max(1, size // 2))).one()
            shows = []
            for _ in range(5):
                started = time.perf_counter()
                contact_timeline(session, middle)
                shows.append((time.perf_counter() - started) * 1000)
            out["show_ms"] = median(shows)
            started = time.perf_counter()
            plan_changes(session, runtime.catalog, now=datetime.now(UTC))
            out["plan_s"] = time.perf_counter() - started
        with runtime.sessions() as session, session.begin():
            session.execute(
                text(
                    "UPDATE deliveries SET due_at = now() - interval '1 second' WHERE id IN "
                    "(SELECT id FROM deliveries WHERE status = 'scheduled' "
                    "ORDER BY due_at DESC LIMIT 1000)"
                )
            )
        scheduler._next_recovery = datetime.now(UTC) + timedelta(hours=1)
        started = time.perf_counter()
        report = scheduler.tick()
        out["tick_ms"] = (time.perf_counter() - started) * 1000
        # Rows of the seeded schedule fall due while the figures are taken: a few more.
        assert report.claimed >= 1000, report
        out["tick_claimed"] = report.claimed
    finally:
        runtime.close()
    return out


def signup_latency(url: str, *, seconds: float = 10.0, rate: float = 100.0) -> dict[str, float]:
    """POST /signups at a fixed `rate` (open loop) through `drip api` (2 workers) on the
    seeded database: p50 and p99 in ms."""
    port = free_port()
    fake, fake_port = start_provider()
    api = subprocess.Popen(
        [sys.executable, "-m", "drip", "api", "--port", str(port), "--workers", "2"],
        env=drip_env(url, fake_port, "bench-scale-api"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: healthy(base), 60, "the API")
        latencies = [latency for _, latency, _ in open_loop(base, seconds, rate, prefix="scale")]
    finally:
        api.terminate()
        fake.terminate()
        api.wait(timeout=30)
    return {
        "signup_p50_ms": percentile(latencies, 0.5) * 1000,
        "signup_p99_ms": percentile(latencies, 0.99) * 1000,
    }


def table(results: list[dict[str, Any]]) -> str:
    """The scale table, one row per size, as docs/performance.md shows it."""
    head = (
        "| subscribers | in flight | deliveries | events | bytes/subscriber (contacts, "
        "enrollments, deliveries, provider events, ids, counts) | recovery pass (first, "
        "with the daily retention run) | tick, 1,000 due (claimed) | stats (first call) | "
        "stats (median of 3) | "
        "contacts show | sequences plan | POST /signups at 100/s (p50, p99) |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        b = r["bytes"]
        split = ", ".join(f"{b[t]:,.0f}" for t in TABLES)
        lines.append(
            f"| {r['size']:,} | {r['in_flight']:,} | {r['deliveries']:,} | {r['events']:,} "
            f"| {b['total']:,.0f} ({split}) "
            f"| {r['recovery_ms']:,.0f} ms ({r['first_recovery_ms']:,.0f} ms) "
            f"| {r['tick_ms']:,.0f} ms ({r['tick_claimed']:,}) "
            f"| {r['stats_first_ms']:,.1f} ms | {r['stats_ms']:,.1f} ms "
            f"| {r['show_ms']:.1f} ms | {r['plan_s']:.1f} s "
            f"| {r['signup_p50_ms']:.1f} ms, {r['signup_p99_ms']:.1f} ms |"
        )
    return "\n".join(lines)
