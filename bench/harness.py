"""What every benchmark section shares: databases, drip's environment, processes, waiting,
and the load generator (urllib3 keep-alive clients on threads)."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import urllib3

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ADMIN = os.environ.get("DRIP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = "redis://127.0.0.1:6379/11"


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fresh_database(name: str) -> str:
    """Drop and create database `name`, migrate it to head; its URL."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    from drip.migrate import upgrade_database

    upgrade_database(url)
    return url


def drop_database(name: str) -> None:
    """Drop database `name` (its autovacuum must not run under the next figure)."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def drip_env(url: str, fake_port: int, namespace: str) -> dict[str, str]:
    """The environment of a drip process on database `url`, sending to the loopback provider."""
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


def wait(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms until it holds; TimeoutError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def quiet(*command: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `command` with its output discarded."""
    return subprocess.Popen(
        list(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """Terminate the processes and wait for each."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def children(pid: int) -> list[int]:
    """The ids of a process's children (none when pgrep is missing)."""
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a running process and its children have used so far: a
    figure that other work on a shared machine changes less than wall time."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / os.sysconf("SC_CLK_TCK")


# -- the loopback provider ---------------------------------------------------------------------
def start_provider() -> tuple[subprocess.Popen[bytes], int]:
    """bench/fast_sendgrid.py on a free port, once it answers."""
    port = free_port()
    fake = subprocess.Popen([sys.executable, str(HERE / "fast_sendgrid.py"), str(port)])
    wait(lambda: provider_up(port), 10, "the fake provider")
    return fake, port


def provider_up(port: int) -> bool:
    """The loopback provider answers."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def provider_stats(port: int) -> dict[str, int]:
    """{"accepted", "duplicates", "requests"} so far."""
    stats: dict[str, int] = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()
    return stats


def provider_times(port: int) -> dict[int, float]:
    """When (Unix time) the provider first accepted each delivery id."""
    times = httpx.get(f"http://127.0.0.1:{port}/times", timeout=30).json()
    return {int(k): float(v) for k, v in times.items()}


# -- an API under load -------------------------------------------------------------------------
def healthy(base: str, path: str = "/healthz") -> bool:
    """The API at `base` answers 200 on `path`."""
    try:
        return httpx.get(base + path, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def client(base: str) -> urllib3.HTTPConnectionPool:
    """A keep-alive client light enough not to take the API's CPU: the load generator runs
    on the same two cores (urllib3 costs half the CPU of httpx per request)."""
    pool: urllib3.HTTPConnectionPool = urllib3.connection_from_url(base, maxsize=1, timeout=10)
    return pool


def post_signup(http: urllib3.HTTPConnectionPool, email: str) -> urllib3.BaseHTTPResponse:
    """POST /signups for `email` as JSON."""
    return http.urlopen(
        "POST",
        "/signups",
        body=json.dumps({"email": email}),
        headers={"Content-Type": "application/json"},
        retries=False,
    )


#: Seconds an open loop runs at its rate before the part it measures: the server settles
#: from what ran before it (in row 7b, ten seconds of clients at its peak; a burst of slow
#: answers in the loop's first 0.1 s came in 4 of 8 runs, 15 to 51 of the slowest 1 %).
WARMUP = 1.0


def warmup_requests(rate: float) -> int:
    """How many requests an open loop at `rate` sends before those it measures."""
    return int(WARMUP * rate)


def open_loop(
    base: str, seconds: float, rate: float, *, prefix: str = "load"
) -> list[tuple[str, float, float]]:
    """Requests at fixed times (`rate` per second) whatever the answers, `WARMUP` seconds of
    them first, not counted. For each counted: the address, the latency counted from the
    time the request was due (so a slow server cannot hide its queueing), and the Unix time
    its 202 arrived."""
    warm = warmup_requests(rate)
    total = warm + int(seconds * rate)
    answers: list[tuple[str, float, float]] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def run(offset: int, step: int) -> None:
        http = client(base)
        for n in range(offset, total, step):
            due = start + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            email = f"{prefix}{n}@example.com"
            response = post_signup(http, email)
            assert response.status == 202, response.data
            done, at = time.perf_counter(), time.time()
            if n < warm:
                continue
            with lock:
                answers.append((email, done - due, at))

    _on_threads(run, 16)
    return answers


def closed_loop(base: str, seconds: float, concurrency: int, *, prefix: str = "peak") -> float:
    """Requests back to back from `concurrency` clients for `seconds`; 202s per second."""
    done = [0] * concurrency
    until = time.perf_counter() + seconds

    def run(index: int, _: int) -> None:
        http = client(base)
        n = 0
        while time.perf_counter() < until:
            if post_signup(http, f"{prefix}{index}-{n}@example.com").status == 202:
                n += 1
        done[index] = n

    _on_threads(run, concurrency)
    return sum(done) / seconds


def post_all(base: str, count: int, concurrency: int, *, prefix: str = "burst") -> float:
    """`count` signups as fast as `concurrency` clients go; the seconds it took."""
    numbers = itertools.count()
    lock = threading.Lock()

    def run(_: int, __: int) -> None:
        http = client(base)
        while True:
            with lock:
                n = next(numbers)
            if n >= count:
                return
            response = post_signup(http, f"{prefix}{n}@example.com")
            assert response.status == 202, response.data

    started = time.perf_counter()
    _on_threads(run, concurrency)
    return time.perf_counter() - started


def _on_threads(target: Callable[[int, int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(i, count)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0.5, 0.99) of the sorted values."""
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]
