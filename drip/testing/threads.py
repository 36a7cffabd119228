"""Threads for tests and fault-injection runs whose failures are not lost.

An exception in a plain `threading.Thread` (a failed `assert` included) is printed and
forgotten: the thread ends, and whoever joins it carries on as if it had succeeded.
`CheckedThread.join()` raises it again in the joining thread, so it fails the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


class CheckedThread(threading.Thread):
    """A thread whose exception is raised again by `join()`; `join()` with a timeout also
    raises when the thread is still running, rather than returning as if it had finished."""

    def __init__(
        self,
        target: Callable[..., object],
        args: Iterable[Any] = (),
        *,
        name: str | None = None,
        daemon: bool = True,
    ) -> None:
        super().__init__(target=target, args=tuple(args), name=name, daemon=daemon)
        #: What the target raised, if it did.
        self.error: BaseException | None = None

    def run(self) -> None:
        """Run the target, keeping what it raises for `join()`."""
        try:
            super().run()
        except BaseException as exc:  # handed to the joining thread
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread; raise what it raised, or TimeoutError if it is still running."""
        super().join(timeout)
        if self.is_alive():
            raise TimeoutError(f"thread {self.name} still running after {timeout}s")
        if self.error is not None:
            raise self.error


def run_concurrently(
    target: Callable[..., object], arguments: Iterable[tuple[Any, ...]], *, timeout: float = 60
) -> None:
    """Call `target` once per argument tuple, all at the same time, and wait for every call;
    the first exception any call raised is raised here."""
    threads = [CheckedThread(target, args) for args in arguments]
    for thread in threads:
        thread.start()
    errors: list[BaseException] = []
    for thread in threads:
        try:
            thread.join(timeout)
        except BaseException as exc:  # every thread joined first, then raised
            errors.append(exc)
    if errors:
        raise errors[0]
