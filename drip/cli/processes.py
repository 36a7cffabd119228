"""`drip run`, `drip api`, `drip scheduler`, `drip worker`: the service's processes."""

from __future__ import annotations

import os
import sys
import threading

import dramatiq
import typer
import uvicorn
from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from drip.api.app import create_app
from drip.cli.common import console, load_settings, opened_runtime
from drip.logs import configure_logging
from drip.migrate import upgrade_database
from drip.runtime import QUEUES


def run(
    host: str = typer.Option("127.0.0.1", help="Address the API listens on."),
    port: int = typer.Option(8000, help="Port the API listens on."),
) -> None:
    """The whole service in one process: API, scheduler and worker threads."""
    settings = load_settings()
    configure_logging(json=False)
    if settings.database_url.startswith("sqlite"):
        upgrade_database(settings.database_url)
    with opened_runtime(settings) as runtime:
        worker = dramatiq.Worker(
            runtime.broker, worker_threads=settings.worker_threads, queues=set(QUEUES)
        )
        worker.start()
        stop = threading.Event()
        scheduler = threading.Thread(
            target=runtime.scheduler().run,
            args=(stop, settings.scheduler_interval),
            name="drip-scheduler",
            daemon=True,
        )
        scheduler.start()
        console.print(
            f"drip: {len(runtime.catalog)} sequence(s), transport "
            f"{settings.transport_name.value}, http://{host}:{port}/"
        )
        try:
            # proxy_headers=False: the client address is drip's to work out, from
            # DRIP_TRUSTED_PROXIES (drip.api.client_ip), not uvicorn's from its own default.
            uvicorn.run(
                create_app(runtime), host=host, port=port, log_config=None, proxy_headers=False
            )
        finally:
            stop.set()
            scheduler.join(timeout=10)
            worker.stop(timeout=10_000)


def api(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Processes serving requests."),
) -> None:
    """The HTTP API alone (any number may run behind a load balancer)."""
    settings = load_settings()
    configure_logging(json=True)
    with opened_runtime(settings):
        pass  # checks the settings and sequence files before any process starts
    uvicorn.run(
        "drip.api.factory:app_from_settings",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=False,  # drip.api.client_ip reads X-Forwarded-For from trusted proxies
    )


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
    with opened_runtime(load_settings()):
        pass  # checks the settings and sequence files before handing over
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
    arguments = make_argument_parser().parse_args(["drip.worker", *options])  # type: ignore[no-untyped-call]
    raise typer.Exit(dramatiq_main(arguments))  # type: ignore[no-untyped-call]
