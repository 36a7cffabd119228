"""`make bench`: drip's throughput and latency on this machine, every figure from one run.

Prints a table and writes docs/performance.md. Needs PostgreSQL and Redis on loopback.
Usage: python bench/run.py [--deliveries 20000] [--rows 1000000] [--seconds 30] [--quick]
       python bench/run.py --scale 100000,1000000   (bench/scale.py: costs by subscriber count)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import contact_import
import psycopg
import redis
import scale
import signup_paths
from harness import (
    HERE,
    REDIS,
    ROOT,
    children,
    closed_loop,
    cpu_seconds,
    drip_env,
    drop_database,
    free_port,
    fresh_database,
    healthy,
    open_loop,
    percentile,
    provider_stats,
    start_provider,
    wait,
)


def seed(
    url: str,
    count: int,
    *,
    due: str,
    sequence: str = "executive-resume",
    step: str = "template-delivery",
    status: str = "scheduled",
) -> None:
    """`count` contacts, each enrolled, each with one delivery; `due` is an SQL expression."""
    from drip.reports.counting import pending_as_scheduled, utc_day

    with psycopg.connect(url, autocommit=True) as db:
        base = db.execute("SELECT coalesce(max(id), 0) FROM contacts").fetchone()[0]
        ids = f"{base} + g"
        rows = f"FROM generate_series(1, {count}) g"
        db.execute(f"""
            INSERT INTO contacts
                (id, public_id, email, email_hash, attributes, status, created_at, updated_at)
            SELECT {ids}, md5('p' || ({ids})), 'b' || ({ids}) || '@example.com',
                   md5('h' || ({ids})) || md5('x' || ({ids})), '{{}}', 'active', now(), now()
            {rows}""")
        db.execute(f"""
            INSERT INTO enrollments (id, contact_id, sequence_id, status, enrolled_at)
            SELECT {ids}, {ids}, '{sequence}', 'active', now() {rows}""")
        # The rows go in as one bulk load, their funnel count as one delta (as the bench's
        # 1,000,000 rows would otherwise be 1,000,000 deltas for the first recovery pass)
        db.execute("SET session_replication_role = replica")
        db.execute(f"""
            INSERT INTO deliveries (enrollment_id, contact_id, sequence_id, step_id, resend_number,
                                    resend, status, due_at, attempts, created_at, updated_at)
            SELECT {ids}, {ids}, '{sequence}', '{step}', 0, false, '{status}', {due}, 0,
                   now(), now()
            {rows}""")
        db.execute("RESET session_replication_role")
        db.execute(f"""
            INSERT INTO delivery_count_deltas (day, sequence_id, step_id, measure, n)
            SELECT {utc_day("postgresql", "now()")}, '{sequence}', '{step}',
                   {pending_as_scheduled("r")}, {count}
            FROM (SELECT '{status}'::text AS status) r""")
        for table in ("contacts", "enrollments", "deliveries"):
            db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        db.execute("ANALYZE")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


# -- 1. baseline --------------------------------------------------------------------------------
def baseline(count: int) -> float:
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter("bench-noop*"):
        client.delete(key)
    sys.path.insert(0, str(HERE))
    import noop_actor

    for n in range(count):
        noop_actor.noop.send(n)
    env = {**os.environ, "BENCH_REDIS_URL": REDIS, "PYTHONPATH": str(HERE)}
    start = time.monotonic()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "noop_actor",
            "--processes",
            "2",
            "--threads",
            "8",
            "--queues",
            "noop",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait(lambda: client.hlen("bench-noop:noop.msgs") == 0, 600, "the no-op queue to drain")
        elapsed = time.monotonic() - start
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return count / elapsed


# -- 2. end to end ------------------------------------------------------------------------------
def end_to_end(count: int) -> dict[str, float]:
    url = fresh_database("drip_bench_e2e")
    seed(url, count, due="now() - interval '1 second'")
    fake, port = start_provider()
    env = drip_env(url, port, "bench-e2e")
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter("bench-e2e*"):
        client.delete(key)
    start = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "drip", "worker", "--processes", "2", "--threads", "8"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "drip", "scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait(lambda: provider_stats(port)["accepted"] > 0, 120, "the first email")
        rss_start = rss_mb(worker.pid)
        first = time.monotonic()
        cpu_first = cpu_seconds(worker.pid)
        wait(lambda: provider_stats(port)["accepted"] >= count, 1800, "every email")
        end = time.monotonic()
        rss_end = rss_mb(worker.pid)
        cpu = cpu_seconds(worker.pid)
        final = provider_stats(port)
    finally:
        for process in (scheduler, worker, fake):
            process.terminate()
            process.wait(timeout=30)
        drop_database("drip_bench_e2e")
    return {
        "emails_per_s": count / (end - start),
        "steady_per_s": count / (end - first),
        "duplicates": final["duplicates"],
        "cpu_ms_per_email": (cpu - cpu_first) / count * 1000,
        "rss_start": rss_start,
        "rss_end": rss_end,
    }


# -- 6. the transport against the sendgrid library's own client ------------------------------
def transports(count: int = 2000) -> dict[str, float]:
    """The same email posted `count` times to the loopback provider by drip's transport
    (urllib3 keep-alive pool) and by the `sendgrid` library's client."""
    from sendgrid import SendGridAPIClient

    from drip.send.message import OutgoingEmail, unsubscribe_headers
    from drip.send.transports.sendgrid import SendGridTransport, build_payload
    from drip.sequences.definition import Address

    fake, port = start_provider()
    email = OutgoingEmail(
        to_email="reader@example.com",
        to_name="Reader",
        sender=Address(email="advice@example.com", name="Resume Desk"),
        reply_to=None,
        subject="Your executive resume template",
        html="<p>An email body of about twelve kilobytes.</p>" * 260,
        text="An email body.\n" * 200,
        headers=unsubscribe_headers("https://drip.example.com/unsubscribe/token"),
        custom_args={"delivery_id": "1"},
    )
    try:
        ours = SendGridTransport(api_key="SG.bench", host=f"http://127.0.0.1:{port}", timeout=5)
        theirs = SendGridAPIClient(api_key="SG.bench", host=f"http://127.0.0.1:{port}")
        figures: dict[str, float] = {}
        for name, send in (
            ("drip", lambda: ours.send(email)),
            ("library", lambda: theirs.client.mail.send.post(request_body=build_payload(email))),
        ):
            send()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(count):
                send()
            figures[f"{name}_ms"] = (time.perf_counter() - wall) / count * 1000
            figures[f"{name}_cpu_ms"] = (time.process_time() - cpu) / count * 1000
        figures["connections"] = ours.pool.num_connections
        ours.close()
        return figures
    finally:
        fake.terminate()
        fake.wait(timeout=30)


# -- 3. scheduler at scale ----------------------------------------------------------------------
#: The yardstick for the scheduler's claim: the same rows, by the same partial index
#: (`ix_deliveries_due`: due_at WHERE status = 'scheduled'), in one statement with no ORM,
#: no paused-sequence filter and nothing else.
BARE_CLAIM = """
    UPDATE deliveries SET status = 'queued', lease_until = %(now)s + interval '120 seconds',
                          updated_at = %(now)s
    WHERE id IN (SELECT id FROM deliveries WHERE status = 'scheduled' AND due_at <= %(now)s
                 ORDER BY due_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
    RETURNING id"""

#: Timed claims of each kind (after one that warms the caches); the median is reported.
TICK_REPEATS = 5


def scheduler_tick(rows: int) -> dict[str, float]:
    from drip.config import Settings
    from drip.deliveries.moves import claim_due
    from drip.runtime import build_runtime

    url = fresh_database("drip_bench_scale")
    seed(url, rows, due="now() + interval '30 days' + (g % 1000) * interval '1 minute'")
    settings = Settings(
        database_url=url,
        redis_url=REDIS,
        redis_namespace="bench-scale",
        secret_key="bench",
        sequences_dir=ROOT / "sequences",
        scheduler_batch_size=1000,
    )
    runtime = build_runtime(settings)
    try:
        # The scheduler's first tick: the recovery pass (every 5 s after) over nothing due
        scheduler = runtime.scheduler()
        started = time.perf_counter()
        scheduler.tick()
        recovery_ms = (time.perf_counter() - started) * 1000
        seed(url, 1000, due="now() - interval '1 second'")
        now = datetime.now(UTC)
        claims: list[float] = []
        bares: list[float] = []
        with psycopg.connect(url) as bare:
            # Alternately, each rolled back; the first of each pays the cold caches
            for _ in range(TICK_REPEATS + 1):
                with runtime.sessions() as session, session.begin():
                    started = time.perf_counter()
                    claimed = claim_due(session, now=now, limit=1000, queue_lease=120)
                    claims.append((time.perf_counter() - started) * 1000)
                    session.rollback()
                assert len(claimed) == 1000, len(claimed)
                started = time.perf_counter()
                returned = bare.execute(BARE_CLAIM, {"now": now}).fetchall()
                bares.append((time.perf_counter() - started) * 1000)
                bare.rollback()
                assert len(returned) == 1000, len(returned)
        claim_ms, bare_ms = median(claims[1:]), median(bares[1:])
        # A tick as it runs between recovery passes: claim, then enqueue, 1,000 due rows
        started = time.perf_counter()
        report = scheduler.tick()
        tick_ms = (time.perf_counter() - started) * 1000
        assert report.claimed == 1000, report
    finally:
        runtime.close()
        drop_database("drip_bench_scale")  # its autovacuum must not run under the next figure
    return {
        "claim_ms": claim_ms,
        "bare_ms": bare_ms,
        "tick_ms": tick_ms,
        "recovery_ms": recovery_ms,
        "rows": rows + 1000,
    }


# -- 4. signup latency --------------------------------------------------------------------------
def signups(seconds: float, rate: int) -> dict[str, float]:
    url = fresh_database("drip_bench_api")
    port = free_port()
    fake, fake_port = start_provider()
    api = subprocess.Popen(
        [sys.executable, "-m", "drip", "api", "--port", str(port), "--workers", "2"],
        env=drip_env(url, fake_port, "bench-api"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: healthy(base), 60, "the API")
        latencies = [latency for _, latency, _ in open_loop(base, seconds, rate)]
        peak = closed_loop(base, 10.0, 16)
    finally:
        api.terminate()
        fake.terminate()
        api.wait(timeout=30)
    return {
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "sent": len(latencies),
        "max_per_s": peak,
    }


#: Every section, in the order they run; `--sections` picks some (to check them on small sizes).
SECTIONS = (
    "baseline",
    "e2e",
    "tick",
    "signups",
    "transports",
    "ceiling",
    "burst",
    "steady",
    "import",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=5_000, help="signups in the burst section")
    parser.add_argument(
        "--import-rows", type=int, default=100_000, help="rows of the import section's CSV file"
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}"
    )
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument(
        "--scale", default="", help="only the scale section, at these subscriber counts: 100000,..."
    )
    args = parser.parse_args()
    if args.scale:  # seeds a database per size (minutes each): run alone, its own table
        print(scale.table(scale.measure([int(n) for n in args.scale.split(",")])))
        return 0
    chosen = set(args.sections.split(","))
    unknown = chosen - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if args.report and chosen != set(SECTIONS):
        parser.error("--report needs every section: the table is one run's figures")
    figures: dict[str, Any] = {}
    for name in SECTIONS:
        if name not in chosen:
            continue
        print(f"{name}...", flush=True)
        figures[name] = _run_section(name, args, figures)
        print(f"  {figures[name]}", flush=True)
    table = ["| measurement | figure | ratio | target |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(args, figures)]
    command = (
        f"python bench/run.py --deliveries {args.deliveries} --rows {args.rows} "
        f"--seconds {args.seconds:.0f} --burst {args.burst} --import-rows {args.import_rows}"
    )
    text = (
        "\n".join(table)
        + f"\n\nMachine: {os.cpu_count()} cores. Reproduce: `{command}` (or `make bench`)\n"
    )
    print(text)
    if args.report:
        current = args.report.read_text() if args.report.exists() else ""
        marker = "<!-- bench-table -->"
        args.report.write_text(
            (current.split(marker)[0] if marker in current else current) + marker + "\n" + text
        )
    return 0


def _run_section(name: str, args: argparse.Namespace, figures: dict[str, Any]) -> Any:
    if name == "baseline":
        return baseline(args.deliveries)
    if name == "e2e":
        return end_to_end(args.deliveries)
    if name == "tick":
        return scheduler_tick(args.rows)
    if name == "signups":
        return signups(args.seconds, 200)
    if name == "transports":
        return transports()
    if name == "ceiling":
        return signup_paths.ceiling(args.seconds)
    if name == "burst":
        return signup_paths.burst(args.burst)
    if name == "import":
        return contact_import.import_rows(args.import_rows)
    # steady: half of drip's own highest signup rate, measured in this run
    peak = (
        figures["ceiling"]["drip_max"] if "ceiling" in figures else figures["signups"]["max_per_s"]
    )
    return signup_paths.steady(peak / 2, args.seconds)


def _rows(args: argparse.Namespace, f: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table's rows for the sections that ran."""
    rows: list[tuple[str, str, str, str]] = []
    raw = f.get("baseline")
    if raw is not None:
        rows.append(
            ("1. raw Dramatiq no-op, 2 processes x 8 threads", f"{raw:,.0f} messages/s", "", "")
        )
    e2e = f.get("e2e")
    if e2e is not None:
        rows.append(
            (
                f"2. end to end, {args.deliveries:,} deliveries",
                f"{e2e['emails_per_s']:,.0f} emails/s "
                f"({e2e['steady_per_s']:,.0f}/s after the first)",
                f"{e2e['emails_per_s'] / raw:.2f} x raw" if raw else "",
                ">= 1,000/s and >= 0.5 x raw",
            )
        )
    tick = f.get("tick")
    if tick is not None:
        rows.append(
            (
                f"3. scheduler tick claiming 1,000 of {tick['rows']:,} rows",
                f"{tick['tick_ms']:.1f} ms (its claim {tick['claim_ms']:.1f} ms; a bare "
                f"UPDATE ... RETURNING by the same index {tick['bare_ms']:.1f} ms; the recovery "
                f"pass, every 5 s: {tick['recovery_ms']:.1f} ms)",
                f"claim {tick['claim_ms'] / tick['bare_ms']:.2f} x bare",
                "<= 50 ms; claim <= 2 x bare",
            )
        )
    api = f.get("signups")
    if api is not None:
        rows.append(
            (
                f"4. signup latency at 200 requests/s for {args.seconds:.0f} s",
                f"p50 {api['p50_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms",
                f"max {api['max_per_s']:,.0f} requests/s",
                "p99 <= 50 ms",
            )
        )
    if e2e is not None:
        growth = (e2e["rss_end"] - e2e["rss_start"]) / e2e["rss_start"] * 100
        rows.append(
            (
                "5. worker RSS over run 2 (2 processes)",
                f"{e2e['rss_start']:.0f} MB -> {e2e['rss_end']:.0f} MB",
                f"{growth:+.1f} %",
                "< +20 %",
            )
        )
        rows.append(
            ("duplicates seen by the provider in run 2", f"{e2e['duplicates']:.0f}", "", "0")
        )
    posts = f.get("transports")
    if posts is not None:
        rows.append(
            (
                "6. one email posted: drip's transport / the sendgrid library's client",
                f"{posts['drip_ms']:.2f} / {posts['library_ms']:.2f} ms "
                f"({posts['drip_cpu_ms']:.2f} / {posts['library_cpu_ms']:.2f} ms of CPU), "
                f"{posts['connections']:.0f} connection for 2,001 emails",
                f"{posts['library_ms'] / posts['drip_ms']:.1f} x faster",
                "no new connection per email",
            )
        )
    top = f.get("ceiling")
    if top is not None:
        rows.append(
            (
                "7. highest signup rate: drip's POST /signups / a bare endpoint (one INSERT)",
                f"{top['drip_max']:,.0f} / {top['bare_max']:,.0f} requests/s",
                f"{top['drip_max'] / top['bare_max']:.2f} x bare",
                ">= 0.5 x bare",
            )
        )
        rows.append(
            (
                f"7b. signup latency at half drip's highest rate ({top['half_rate']:,.0f}/s)",
                f"p50 {top['half_p50_ms']:.1f} ms, p99 {top['half_p99_ms']:.1f} ms",
                f"p99 {top['half_p99_ms'] / top['half_p50_ms']:.1f} x p50",
                "p99 <= 5 x p50",
            )
        )
    burst = f.get("burst")
    if burst is not None:
        versus = (
            f"{burst['steady_per_s'] / e2e['steady_per_s']:.2f} x batched "
            f"({burst['emails_per_s'] / e2e['emails_per_s']:.2f} x overall); CPU per email "
            f"{burst['cpu_ms_per_email'] / e2e['cpu_ms_per_email']:.2f} x batched"
            if e2e
            else ""
        )
        rows.append(
            (
                f"8. a burst of {args.burst:,} signups (posted at {burst['posted_per_s']:,.0f}/s), "
                "email 1 drained",
                f"{burst['emails_per_s']:,.0f} emails/s ({burst['steady_per_s']:,.0f}/s after the "
                f"first) in {burst['requests']:,.0f} provider requests, "
                f"{burst['duplicates']:.0f} duplicates; worker CPU after the first email "
                f"{burst['cpu_ms_per_email']:.2f} ms per email"
                + (f" ({e2e['cpu_ms_per_email']:.2f} batched)" if e2e else ""),
                versus,
                ">= 0.8 x batched (row 2, after the first email)",
            )
        )
    steady = f.get("steady")
    if steady is not None:
        rows.append(
            (
                f"9. signup's 202 to email 1 accepted, at {steady['rate']:,.0f} signups/s "
                f"(half drip's highest) for {args.seconds:.0f} s",
                f"p50 {steady['p50_ms']:.0f} ms, p99 {steady['p99_ms']:.0f} ms "
                f"(max {steady['max_ms']:.0f} ms, {steady['signups']:,.0f} signups, "
                f"{steady['duplicates']:.0f} duplicates)",
                "",
                "p50 <= 300 ms, p99 <= 2 s",
            )
        )
    imported = f.get("import")
    if imported is not None:
        rows.append(
            (
                f"10. drip contacts import of {imported['rows']:,.0f} new subscribers from CSV",
                f"{imported['seconds']:.1f} s ({imported['rows_per_s']:,.0f} rows/s); "
                f"the same file again, changing nothing: {imported['repeat_s']:.1f} s",
                "",
                "100,000 rows < 60 s",
            )
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
