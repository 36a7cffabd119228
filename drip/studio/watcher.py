"""Reload the workspace when a file in the sequences folder changes, and tell the pages.

`watchfiles` reports a save within its debounce (set low here: the page must show the
change within two seconds); the reload runs in a thread, then `Changes.publish` wakes
every page's event stream with the new generation.
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio.to_thread
import structlog
from watchfiles import awatch

from drip.studio.workspace import Workspace

log = structlog.get_logger(__name__)

#: Milliseconds `watchfiles` gathers changes before reporting them, and between polls.
DEBOUNCE_MS, STEP_MS = 150, 50


class Changes:
    """The latest generation of the workspace, and a way to wait for a newer one."""

    def __init__(self, generation: int = 1) -> None:
        self.generation = generation
        self._event = asyncio.Event()

    def publish(self, generation: int) -> None:
        """Record `generation` and wake everyone waiting."""
        self.generation = generation
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_past(self, generation: int, *, timeout: float) -> int:
        """The generation once it is newer than `generation`, or the same after `timeout`."""
        if self.generation > generation:
            return self.generation
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.generation


async def watch(workspace: Workspace, changes: Changes, stop: asyncio.Event) -> None:
    """Reload `workspace` on every change under its folder until `stop` is set."""
    async for changed in awatch(
        workspace.folder, stop_event=stop, debounce=DEBOUNCE_MS, step=STEP_MS
    ):
        snapshot = await anyio.to_thread.run_sync(workspace.reload)
        log.info(
            "studio.reloaded",
            generation=snapshot.generation,
            files=sorted({path for _, path in changed})[:5],
            problems=len(snapshot.problems),
        )
        changes.publish(snapshot.generation)
