"""A real PgBouncer (Debian's package) for a test: transaction pooling on a free port, in front
of the test PostgreSQL, with trust authentication and a generated ini and user list."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.conftest import require_tools, wait_for
from tests.integration.fleet import free_port

#: Where Debian installs the binary (sbin is not on every user's PATH).
DEBIAN_PGBOUNCER = "/usr/sbin/pgbouncer"


@dataclass
class PgBouncer:
    """A running PgBouncer: clients connect to `port`; `log` is what it wrote."""

    port: int
    log: Path

    def url(self, database: str, *, user: str = "postgres") -> str:
        """A connection URL for `database` through this PgBouncer."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict[str, object]]:
        """`SHOW <what>` on the admin console (CLIENTS, SERVERS, POOLS, STATS), as rows."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as admin:
            cursor = admin.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def pgbouncer_binary() -> str:
    """The pgbouncer command; skips the test (fails it under CI) when it is not installed."""
    found = shutil.which("pgbouncer") or shutil.which(DEBIAN_PGBOUNCER)
    require_tools(found or "pgbouncer", why="Debian package pgbouncer")
    assert found is not None
    return found


@contextmanager
def running_pgbouncer(
    workdir: Path, *, upstream: tuple[str, int] = ("127.0.0.1", 5432), server_pool: int = 4
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling, at most `server_pool` server connections per
    database, until the block ends."""
    binary = pgbouncer_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    users = workdir / "userlist.txt"
    users.write_text('"postgres" ""\n')
    ini = workdir / "pgbouncer.ini"
    host, upstream_port = upstream
    ini.write_text(
        "[databases]\n"
        f"* = host={host} port={upstream_port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {users}\n"
        "admin_users = postgres\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {server_pool}\n"
        "max_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    log = workdir / "pgbouncer.log"
    # PgBouncer refuses to run as root; it reads its files first, then becomes `postgres`.
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    with log.open("ab") as out:
        process = subprocess.Popen([binary, *as_user, str(ini)], stdout=out, stderr=out)
    try:
        wait_for(lambda: _listening(port, process, log), timeout=20, what="PgBouncer to listen")
        yield PgBouncer(port, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _listening(port: int, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"pgbouncer exited:\n{log.read_text(errors='replace')}")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
