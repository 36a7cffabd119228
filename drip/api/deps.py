"""Request-scoped access to the process's runtime."""

from __future__ import annotations

from fastapi import Request

from drip.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The application's runtime (settings, database, broker, catalog), made with the app."""
    runtime: Runtime = request.app.state.runtime
    return runtime
