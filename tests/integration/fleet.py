"""Several real drip processes against one database, as several hosts run them: each started
in its own process group (so SIGKILL takes a worker and the processes it forked), on ports
picked at run time, under its own PostgreSQL application name (so `pg_stat_activity` tells
their connections apart)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
import psycopg

from drip.config import Settings
from tests.conftest import wait_for
from tests.integration.test_processes import settings_env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Fleet:
    """The processes of one deployment; `stop()` kills whatever is still running."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.env = settings_env(settings)
        self.workdir = workdir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start `drip ARGS` as `name` (its application name in PostgreSQL too)."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        process = subprocess.Popen(
            [sys.executable, "-m", "drip", *args],
            env={**self.env, "PGAPPNAME": name},
            cwd=self.workdir,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def start_api(self, name: str, *, port: int | None = None) -> str:
        """Start `drip api` as `name` on `port` (else a free one); its base URL once it answers."""
        port = port or free_port()
        self.start(name, "api", "--host", "127.0.0.1", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: self._answers(name, url), timeout=60, what=f"{name} to listen")
        return url

    def _answers(self, name: str, url: str) -> bool:
        if self.processes[name].poll() is not None:
            raise AssertionError(f"{name} exited:\n{self.log(name)}")
        try:
            httpx.get(f"{url}/healthz", timeout=2)
        except httpx.TransportError:
            return False
        return True

    def kill(self, name: str) -> None:
        """SIGKILL `name` and every process it started (a worker's forked processes)."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        """Kill every process still running."""
        for name in self.processes:
            self.kill(name)

    def log(self, name: str) -> str:
        """What `name` wrote to stdout and stderr."""
        return (self.workdir / f"{name}.log").read_text(errors="replace")


def connections_by_name(admin_url: str, database: str) -> Counter[str]:
    """Open connections to `database`, counted by application name."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity"
            " WHERE datname = %s GROUP BY application_name",
            (database,),
        ).fetchall()
    return Counter({str(name): int(count) for name, count in rows})


def in_transaction(admin_url: str, database: str, name: str) -> bool:
    """Whether the process called `name` waits inside an open transaction right now: a drip
    worker does while a batch's rows are `sending` and its emails are with the provider."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = %s AND state = 'idle in transaction'",
            (database, name),
        ).fetchone()
    return bool(row and row[0])


class ConnectionSampler:
    """Samples `connections_by_name` in a thread until stopped; keeps each name's highest."""

    def __init__(self, admin_url: str, database: str, *, every: float = 0.25) -> None:
        self.admin_url, self.database, self.every = admin_url, database, every
        self.highest: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connection-sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, count in connections_by_name(self.admin_url, self.database).items():
                self.highest[name] = max(self.highest[name], count)
            self.samples += 1
            self._stop.wait(self.every)
