"""`drip run`, `drip api`: the processes that serve HTTP (the API's stack is imported here
alone, so `drip worker` and `drip scheduler` start without it)."""

from __future__ import annotations

import threading

import dramatiq
import typer
import uvicorn

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
