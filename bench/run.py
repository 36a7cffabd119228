"""`make bench`: drip's throughput and latency on this machine, every figure from one run.

Prints a table and writes docs/performance.md. Needs PostgreSQL and Redis on loopback.
Usage: python bench/run.py [--deliveries 20000] [--rows 1000000] [--seconds 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import urllib3

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ADMIN = os.environ.get("DRIP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = "redis://127.0.0.1:6379/11"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fresh_database(name: str) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    from drip.migrate import upgrade_database

    upgrade_database(url)
    return url


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
        db.execute(f"""
            INSERT INTO deliveries (enrollment_id, contact_id, sequence_id, step_id, resend_number,
                                    resend, status, due_at, attempts, created_at, updated_at)
            SELECT {ids}, {ids}, '{sequence}', '{step}', 0, false, '{status}', {due}, 0,
                   now(), now()
            {rows}""")
        for table in ("contacts", "enrollments", "deliveries"):
            db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        db.execute("ANALYZE")


def drip_env(url: str, fake_port: int, namespace: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIP_")}
    env.update(
        {
            "DRIP_DATABASE_URL": url,
            "DRIP_REDIS_URL": REDIS,
            "DRIP_REDIS_NAMESPACE": namespace,
            "DRIP_TRANSPORT": "sendgrid",
            "DRIP_SENDGRID_API_KEY": "SG.bench",
            "DRIP_SENDGRID_HOST": f"http://127.0.0.1:{fake_port}",
            "DRIP_SECRET_KEY": "bench",
            "DRIP_SEQUENCES_DIR": str(ROOT / "sequences"),
            "DRIP_SCHEDULER_INTERVAL": "0.2",
            "DRIP_SCHEDULER_BATCH_SIZE": "1000",
            "DRIP_WORKER_METRICS_PORT": "0",
            "DRIP_SIGNUP_RATE_PER_IP": "1000000/minute",
            "DRIP_SIGNUP_RATE_PER_ADDRESS": "1000/hour",
            "DRIP_BASE_URL": "https://drip.example.com",
        }
    )
    return env


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


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


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
    port = free_port()
    fake = subprocess.Popen([sys.executable, str(HERE / "fast_sendgrid.py"), str(port)])
    env = drip_env(url, port, "bench-e2e")
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter("bench-e2e*"):
        client.delete(key)
    stats = lambda: httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()  # noqa: E731
    wait(lambda: _up(port), 10, "the fake provider")
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
        wait(lambda: stats()["accepted"] > 0, 120, "the first email")
        rss_start = rss_mb(worker.pid)
        first = time.monotonic()
        wait(lambda: stats()["accepted"] >= count, 1800, "every email")
        end = time.monotonic()
        rss_end = rss_mb(worker.pid)
        final = stats()
    finally:
        for process in (scheduler, worker, fake):
            process.terminate()
            process.wait(timeout=30)
        drop_database("drip_bench_e2e")
    return {
        "emails_per_s": count / (end - start),
        "steady_per_s": count / (end - first),
        "duplicates": final["duplicates"],
        "rss_start": rss_start,
        "rss_end": rss_end,
    }


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -- 6. the transport against the sendgrid library's own client ------------------------------
def transports(count: int = 2000) -> dict[str, float]:
    """The same email posted `count` times to the loopback provider by drip's transport
    (urllib3 keep-alive pool) and by the `sendgrid` library's client."""
    from sendgrid import SendGridAPIClient

    from drip.send.message import OutgoingEmail, unsubscribe_headers
    from drip.send.transports.sendgrid import SendGridTransport, build_payload
    from drip.sequences.definition import Address

    port = free_port()
    fake = subprocess.Popen([sys.executable, str(HERE / "fast_sendgrid.py"), str(port)])
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
        wait(lambda: _up(port), 10, "the fake provider")
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
        for _ in range(2):  # the first claim pays the cold caches; the second is timed
            with runtime.sessions() as session, session.begin():  # claim only, rolled back
                started = time.perf_counter()
                claimed = claim_due(session, now=now, limit=1000, queue_lease=120)
                claim_ms = (time.perf_counter() - started) * 1000
                session.rollback()
            assert len(claimed) == 1000, len(claimed)
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
        "tick_ms": tick_ms,
        "recovery_ms": recovery_ms,
        "rows": rows + 1000,
    }


# -- 4. signup latency --------------------------------------------------------------------------
def signups(seconds: float, rate: int) -> dict[str, float]:
    url = fresh_database("drip_bench_api")
    port, fake_port = free_port(), free_port()
    fake = subprocess.Popen([sys.executable, str(HERE / "fast_sendgrid.py"), str(fake_port)])
    api = subprocess.Popen(
        [sys.executable, "-m", "drip", "api", "--port", str(port), "--workers", "2"],
        env=drip_env(url, fake_port, "bench-api"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: _healthy(base), 60, "the API")
        latencies = _open_loop(base, seconds, rate)
        peak = _closed_loop(base, 10.0, 16)
    finally:
        api.terminate()
        fake.terminate()
        api.wait(timeout=30)
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "sent": len(latencies),
        "max_per_s": peak,
    }


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _client(base: str) -> urllib3.HTTPConnectionPool:
    """A keep-alive client light enough not to take the API's CPU: the load generator runs
    on the same two cores (urllib3 costs half the CPU of httpx per request)."""
    pool: urllib3.HTTPConnectionPool = urllib3.connection_from_url(base, maxsize=1, timeout=10)
    return pool


def _post_signup(http: urllib3.HTTPConnectionPool, email: str) -> urllib3.BaseHTTPResponse:
    return http.urlopen(
        "POST",
        "/signups",
        body=json.dumps({"email": email}),
        headers={"Content-Type": "application/json"},
        retries=False,
    )


def _open_loop(base: str, seconds: float, rate: int) -> list[float]:
    """Requests at fixed times (rate per second) whatever the answers; latency measured from
    the time each request was due, so a slow server cannot hide its queueing."""
    total = int(seconds * rate)
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def client(offset: int, step: int) -> None:
        http = _client(base)
        for n in range(offset, total, step):
            due = start + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            response = _post_signup(http, f"load{n}@example.com")
            assert response.status == 202, response.data
            with lock:
                latencies.append(time.perf_counter() - due)

    threads = [threading.Thread(target=client, args=(i, 16)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _closed_loop(base: str, seconds: float, concurrency: int) -> float:
    done = [0] * concurrency
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        http = _client(base)
        n = 0
        while time.perf_counter() < stop:
            _post_signup(http, f"peak{index}-{n}@example.com")
            n += 1
        done[index] = n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    print("baseline...", flush=True)
    raw = baseline(args.deliveries)
    print(f"  {raw:.0f} messages/s\nend to end...", flush=True)
    e2e = end_to_end(args.deliveries)
    print(f"  {e2e}\nscheduler at scale...", flush=True)
    tick = scheduler_tick(args.rows)
    print(f"  {tick}\nsignups...", flush=True)
    api = signups(args.seconds, 200)
    print(f"  {api}\ntransports...", flush=True)
    posts = transports()
    print(f"  {posts}", flush=True)
    growth = (e2e["rss_end"] - e2e["rss_start"]) / e2e["rss_start"] * 100
    rows = [
        ("1. raw Dramatiq no-op, 2 processes x 8 threads", f"{raw:,.0f} messages/s", "", ""),
        (
            f"2. end to end, {args.deliveries:,} deliveries",
            f"{e2e['emails_per_s']:,.0f} emails/s ({e2e['steady_per_s']:,.0f}/s after the first)",
            f"{e2e['emails_per_s'] / raw:.2f} x raw",
            ">= 1,000/s and >= 0.5 x raw",
        ),
        (
            f"3. scheduler tick claiming 1,000 of {tick['rows']:,} rows",
            f"{tick['tick_ms']:.1f} ms (its claim {tick['claim_ms']:.1f} ms; the recovery pass, "
            f"every 5 s: {tick['recovery_ms']:.1f} ms)",
            "",
            "<= 50 ms",
        ),
        (
            "4. signup latency at 200 requests/s for " + f"{args.seconds:.0f} s",
            f"p50 {api['p50_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms",
            f"max {api['max_per_s']:,.0f} requests/s",
            "p99 <= 50 ms",
        ),
        (
            "5. worker RSS over run 2 (2 processes)",
            f"{e2e['rss_start']:.0f} MB -> {e2e['rss_end']:.0f} MB",
            f"{growth:+.1f} %",
            "< +20 %",
        ),
        ("duplicates seen by the provider in run 2", f"{e2e['duplicates']:.0f}", "", "0"),
        (
            "6. one email posted: drip's transport / the sendgrid library's client",
            f"{posts['drip_ms']:.2f} / {posts['library_ms']:.2f} ms "
            f"({posts['drip_cpu_ms']:.2f} / {posts['library_cpu_ms']:.2f} ms of CPU), "
            f"{posts['connections']:.0f} connection for 2,001 emails",
            f"{posts['library_ms'] / posts['drip_ms']:.1f} x faster",
            "no new connection per email",
        ),
    ]
    table = ["| measurement | figure | ratio | target |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    command = (
        f"python bench/run.py --deliveries {args.deliveries} --rows {args.rows} "
        f"--seconds {args.seconds:.0f}"
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


if __name__ == "__main__":
    sys.exit(main())
