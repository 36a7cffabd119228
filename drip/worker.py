"""What `drip worker` hands to Dramatiq's own worker: `set_up` builds each worker process's
runtime, after Dramatiq forked the process from the command's.

Each worker process builds its own database pool, transport client and broker connection:
none of them may cross a fork. The sequence files are not loaded and checked again: the
command checked them just before Dramatiq forked (`hand_down`), so a worker process holds
that catalog in the memory it forked with, checked from the same files. A SIGHUP restart
runs the command again, which checks the files again.
"""

from __future__ import annotations

import os
from pathlib import Path

import dramatiq

# Imported here, by the command's process before Dramatiq forks, rather than by each worker
# process: SQLAlchemy imports the database driver only when an engine is created, and httpx
# its transport only when a client is (0.15 s of each worker process's start-up here).
import httpcore  # noqa: F401
import psycopg  # noqa: F401
from dramatiq.middleware.prometheus import Prometheus

from drip.config import Settings
from drip.logs import configure_logging
from drip.runtime import Runtime, build_runtime
from drip.sequences.catalog import SequenceCatalog

#: The catalog `drip worker` checked before Dramatiq forked its worker processes, by what
#: it was loaded from (the sequences folder and the postal address its renders checked).
_handed_down: dict[tuple[Path, str], SequenceCatalog] = {}


def _loaded_from(settings: Settings) -> tuple[Path, str]:
    return settings.sequences_dir.resolve(), settings.resolved_postal_address()


def hand_down(settings: Settings, catalog: SequenceCatalog) -> None:
    """Keep `catalog`, checked from the files `settings` name, for the worker processes
    Dramatiq forks from this process."""
    _handed_down.clear()
    _handed_down[_loaded_from(settings)] = catalog


def handed_down(settings: Settings) -> SequenceCatalog | None:
    """The catalog handed down from the files `settings` name; None when there is none."""
    return _handed_down.get(_loaded_from(settings))


def set_up() -> Runtime:
    """Build this worker process's runtime (on the handed-down catalog when there is one) and
    make its broker Dramatiq's."""
    configure_logging(json=True)
    settings = Settings()
    runtime = build_runtime(settings, catalog=handed_down(settings))
    if settings.worker_metrics_port:
        # Dramatiq's own Prometheus exposition, which also serves drip's send counters and latency.
        os.environ.setdefault("dramatiq_prom_port", str(settings.worker_metrics_port))
        runtime.broker.add_middleware(Prometheus())
    dramatiq.set_broker(runtime.broker)
    return runtime
