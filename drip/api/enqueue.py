"""Enqueue a delivery right after its transaction commits, or hand it back to the scheduler."""

from __future__ import annotations

from drip.runtime import Runtime


def enqueue_or_release(runtime: Runtime, delivery_id: int) -> None:
    """Send now; if Redis is down, the row goes back to `scheduled` and the scheduler sends it."""
    runtime.enqueue_after_commit([delivery_id])
