"""Helpers for integration tests: a scheduler thread, API clients, database reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from drip.api.app import create_app
from drip.db import utcnow
from drip.models import Delivery
from drip.runtime import Runtime
from drip.testing.threads import CheckedThread
from tests.conftest import wait_for


class SchedulerThread:
    """The scheduler ticking in a thread, as `drip scheduler` does, except that a tick
    that raises stops it and fails the test (see `running_scheduler`)."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        self.scheduler = runtime.scheduler()
        self.interval = interval
        #: When the last completed tick began, by the scheduler's clock.
        self.ticked_from: datetime | None = None
        self._stop = threading.Event()
        self._thread = CheckedThread(self._loop, name="scheduler")

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking; raise what a tick raised, if one did."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = self.scheduler.clock()
            self.scheduler.tick()
            self.ticked_from = began
            self._stop.wait(self.interval)

    def wait_past(self, moment: datetime, *, timeout: float = 15) -> None:
        """Wait until a tick that began after `moment` has completed: every row due by then
        has been claimed and enqueued."""

        def passed() -> bool:
            if self._thread.error is not None:
                raise self._thread.error
            return self.ticked_from is not None and self.ticked_from > moment

        wait_for(passed, timeout=timeout, what=f"a scheduler tick after {moment:%H:%M:%S.%f}")

    def wait_past_every_due_row(self, runtime: Runtime, *, timeout: float = 15) -> None:
        """Wait until the scheduler has ticked past the due time of every row, whatever its
        status: a negative assertion after this (nothing more was sent) can fail."""
        with runtime.sessions() as session:
            latest = session.scalar(select(func.max(Delivery.due_at)))
        self.wait_past(max(latest or utcnow(), utcnow()), timeout=timeout)


@contextmanager
def running_scheduler(runtime: Runtime, interval: float = 0.05) -> Iterator[SchedulerThread]:
    """The real scheduler ticking in a thread for the duration of the block; a tick that
    raises fails the test when the block ends."""
    ticking = SchedulerThread(runtime, interval)
    ticking.start()
    try:
        yield ticking
    finally:
        ticking.stop()


def api_client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), base_url="https://drip.test", follow_redirects=False)


def deliveries(runtime: Runtime) -> list[Delivery]:
    """Every delivery row, oldest first."""
    with runtime.sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))
