"""`make bench`, section `import`: `drip contacts import` of a CSV file, as an operator runs it.

The command runs as its own process on a fresh database (startup, reading and checking
the file, the batches, the summary), then once more on the same file, which must change
nothing. Target: 100,000 rows in under a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import drip_env, drop_database, free_port, fresh_database

#: The zones the rows cycle through, so each first email is fitted to a window of its own.
ZONES = ("", "Europe/London", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney")


def write_rows(path: Path, count: int) -> None:
    """A file of `count` distinct subscribers with every column an import reads."""
    with path.open("w") as out:
        out.write("email,first_name,timezone,source,consent_at,attr.target_role\n")
        for n in range(count):
            zone = ZONES[n % len(ZONES)]
            out.write(f"reader{n}@example.com,Reader,{zone},old-list,2025-01-02T03:04:05Z,CFO\n")


def import_rows(count: int) -> dict[str, float]:
    """Seconds for `drip contacts import` of `count` new rows, and for the repeat."""
    url = fresh_database("drip_bench_import")
    env = drip_env(url, free_port(), "bench-import")  # no email is sent: no provider runs
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "subscribers.csv"
            write_rows(path, count)
            first, answer = _timed_import(path, env)
            assert answer["imported"] == count, answer
            second, again = _timed_import(path, env)
            assert again["already_enrolled"] == count, again
    finally:
        drop_database("drip_bench_import")
    return {"rows": count, "seconds": first, "rows_per_s": count / first, "repeat_s": second}


def _timed_import(path: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    command = [sys.executable, "-m", "drip", "contacts", "import", str(path)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--sequence", "executive-resume", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    answer: dict[str, Any] = json.loads(done.stdout)
    return elapsed, answer


if __name__ == "__main__":
    print(import_rows(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
