"""Benchmark sections for the path a lead magnet lives on: signups posted through a real
`drip api` and their first email, each figure set against a yardstick of the same run.

- `ceiling`: the highest rate of a bare FastAPI endpoint (bench/bare_api.py) and of drip's
  `POST /signups`, then drip at half its own highest rate (p50, p99);
- `burst`: signups posted as fast as the load generator goes while no worker runs, then
  `drip scheduler` and `drip worker` started: how fast email 1 drains;
- `steady`: API, scheduler and worker running, signups at a fixed rate: the time from a
  signup's 202 to the provider's acceptance of its email 1.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import psycopg
import redis
from harness import (
    HERE,
    REDIS,
    closed_loop,
    cpu_seconds,
    drip_env,
    drop_database,
    free_port,
    fresh_database,
    healthy,
    open_loop,
    percentile,
    post_all,
    provider_stats,
    provider_times,
    quiet,
    start_provider,
    stop,
    wait,
    warmup_requests,
)

#: Clients the load generator runs at once when it goes as fast as it can.
CLIENTS = 16


def _api(env: dict[str, str]) -> tuple[Any, str]:
    port = free_port()
    api = quiet(sys.executable, "-m", "drip", "api", "--port", str(port), "--workers", "2", env=env)
    base = f"http://127.0.0.1:{port}"
    wait(lambda: healthy(base), 60, "the API")
    return api, base


def _workers(env: dict[str, str]) -> tuple[Any, Any]:
    worker = quiet(
        sys.executable, "-m", "drip", "worker", "--processes", "2", "--threads", "8", env=env
    )
    scheduler = quiet(sys.executable, "-m", "drip", "scheduler", env=env)
    return worker, scheduler


def _clear_redis(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{namespace}*"):
        client.delete(key)
    client.close()


def ceiling(seconds: float, peak_seconds: float = 10.0) -> dict[str, float]:
    """The bare endpoint's highest rate, drip's, and drip's p50/p99 at half of its own."""
    from bare_api import prepare

    fake, fake_port = start_provider()
    try:
        url = fresh_database("drip_bench_bare")
        prepare(url)
        port = free_port()
        bare = quiet(
            sys.executable,
            str(HERE / "bare_api.py"),
            str(port),
            "2",
            env={**drip_env(url, fake_port, "bench-bare"), "BENCH_BARE_DATABASE_URL": url},
        )
        try:
            wait(lambda: healthy(f"http://127.0.0.1:{port}"), 60, "the bare API")
            bare_max = closed_loop(f"http://127.0.0.1:{port}", peak_seconds, CLIENTS)
        finally:
            stop(bare)
            drop_database("drip_bench_bare")
        url = fresh_database("drip_bench_ceiling")
        _clear_redis("bench-ceiling")
        api, base = _api(drip_env(url, fake_port, "bench-ceiling"))
        try:
            drip_max = closed_loop(base, peak_seconds, CLIENTS)
            answers = open_loop(base, seconds, drip_max / 2, prefix="half")
        finally:
            stop(api)
            drop_database("drip_bench_ceiling")
    finally:
        stop(fake)
    latencies = [latency for _, latency, _ in answers]
    return {
        "bare_max": bare_max,
        "drip_max": drip_max,
        "half_rate": drip_max / 2,
        "half_p50_ms": percentile(latencies, 0.5) * 1000,
        "half_p99_ms": percentile(latencies, 0.99) * 1000,
    }


def burst(count: int) -> dict[str, float]:
    """`count` signups posted through `drip api` with no worker running, the API stopped,
    then the scheduler and worker started: email 1's drain rate (the clock starts before
    either process is launched, as in the batched path's section)."""
    url = fresh_database("drip_bench_burst")
    _clear_redis("bench-burst")
    fake, fake_port = start_provider()
    env = drip_env(url, fake_port, "bench-burst")
    try:
        api, base = _api(env)
        try:
            posting = post_all(base, count, CLIENTS)
        finally:
            stop(api)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("ANALYZE")  # as the batched path's seeded tables are: the same footing
        start = time.monotonic()
        worker, scheduler = _workers(env)
        try:
            wait(lambda: provider_stats(fake_port)["accepted"] > 0, 120, "the first email")
            first = time.monotonic()
            cpu_first = cpu_seconds(worker.pid)
            wait(lambda: provider_stats(fake_port)["accepted"] >= count, 1800, "every email 1")
            end = time.monotonic()
            cpu = cpu_seconds(worker.pid)
            final = provider_stats(fake_port)
        finally:
            stop(scheduler, worker)
    finally:
        stop(fake)
        drop_database("drip_bench_burst")
    return {
        "posted_per_s": count / posting,
        "emails_per_s": count / (end - start),
        "steady_per_s": count / (end - first),
        "cpu_ms_per_email": (cpu - cpu_first) / count * 1000,
        "requests": final["requests"],
        "duplicates": final["duplicates"],
    }


def steady(rate: float, seconds: float) -> dict[str, float]:
    """Signups at `rate` per second for `seconds` with the API, scheduler and worker all
    running: the time from each 202 to the provider's acceptance of that signup's email 1."""
    url = fresh_database("drip_bench_steady")
    _clear_redis("bench-steady")
    fake, fake_port = start_provider()
    env = drip_env(url, fake_port, "bench-steady")
    try:
        api, base = _api(env)
        worker, scheduler = _workers(env)
        try:
            # Warm up: the worker processes are up once a first signup's email is accepted.
            post_all(base, 1, 1, prefix="warm")
            wait(lambda: provider_stats(fake_port)["accepted"] >= 1, 120, "the first email")
            answers = open_loop(base, seconds, rate, prefix="steady")
            total = warmup_requests(rate) + len(answers) + 1  # with the loop's warm-up
            wait(lambda: provider_stats(fake_port)["accepted"] >= total, 600, "every email 1")
            accepted = provider_times(fake_port)
            duplicates = provider_stats(fake_port)["duplicates"]
        finally:
            stop(api, scheduler, worker)
        with psycopg.connect(url) as db:
            first: dict[str, int] = dict(
                db.execute(
                    "SELECT c.email, min(d.id) FROM deliveries d "
                    "JOIN contacts c ON c.id = d.contact_id GROUP BY c.email"
                ).fetchall()
            )
    finally:
        stop(fake)
        drop_database("drip_bench_steady")
    waits = [accepted[first[email]] - answered for email, _, answered in answers]
    return {
        "rate": rate,
        "signups": len(answers),
        "p50_ms": percentile(waits, 0.5) * 1000,
        "p99_ms": percentile(waits, 0.99) * 1000,
        "max_ms": max(waits) * 1000,
        "duplicates": duplicates,
    }
