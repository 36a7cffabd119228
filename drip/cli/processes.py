"""`drip scheduler`, `drip worker`: the service's background processes (`drip run` and `drip api`,
which serve HTTP, are in `drip.cli.servers`: these two start without the API's imports)."""

from __future__ import annotations

import gc
import os
import sys
import threading

import typer
from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from drip.cli.common import checked_catalog, load_settings, opened_runtime
from drip.logs import configure_logging
from drip.runtime import QUEUES
from drip.worker import hand_down

#: What Dramatiq's worker processes call once forked: `drip.worker.set_up`.
WORKER_SET_UP = "drip.worker:set_up"


def scheduler() -> None:
    """The scheduler alone: claims due deliveries and enqueues them (any number may run)."""
    settings = load_settings()
    configure_logging(json=True)
    with opened_runtime(settings) as runtime:
        stop = threading.Event()
        try:
            runtime.scheduler().run(stop, settings.scheduler_interval)
        except KeyboardInterrupt:
            stop.set()


def worker(
    processes: int = typer.Option(2, min=1, help="Worker processes."),
    threads: int = typer.Option(8, min=1, help="Threads per process."),
) -> None:
    """Dramatiq's own worker over drip's broker (any number may run)."""
    # Each worker process builds its runtime from this environment: its database pool
    # follows --threads (drip.db.pool_limits), one connection per thread at least.
    os.environ["DRIP_WORKER_THREADS"] = str(threads)
    settings = load_settings()
    # The sequence files are checked here, once, before any worker process starts; each
    # process Dramatiq forks from this one reuses the catalog (drip.worker.set_up) and
    # builds the rest of its runtime (pool, broker, transport) itself.
    hand_down(settings, checked_catalog(settings))
    # What start-up built lives as long as the processes: frozen out of the collector, it
    # is neither scanned by each worker process's collections nor copied into it by them.
    # Collected first, so no garbage of start-up is frozen with it.
    gc.collect()
    gc.freeze()
    options = ["--processes", str(processes), "--threads", str(threads), "--queues", *QUEUES]
    # Dramatiq's own main runs in this process: its worker processes fork from it with drip
    # already imported, instead of a new interpreter importing everything again (about a
    # second of start-up). A SIGHUP restart re-runs this same command.
    sys.argv = [
        sys.executable,
        "-m",
        "drip",
        "worker",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    arguments = make_argument_parser().parse_args([WORKER_SET_UP, *options])  # type: ignore[no-untyped-call]
    raise typer.Exit(dramatiq_main(arguments))  # type: ignore[no-untyped-call]
