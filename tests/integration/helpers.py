"""Helpers for integration tests: a scheduler thread, API clients, database reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import select

from drip.api.app import create_app
from drip.models import Delivery
from drip.runtime import Runtime


@contextmanager
def running_scheduler(runtime: Runtime, interval: float = 0.05) -> Iterator[None]:
    """The real scheduler loop in a thread for the duration of the block."""
    stop = threading.Event()
    thread = threading.Thread(target=runtime.scheduler().run, args=(stop, interval), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def api_client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), base_url="https://drip.test", follow_redirects=False)


def deliveries(runtime: Runtime) -> list[Delivery]:
    """Every delivery row, oldest first."""
    with runtime.sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))
