"""The API built from settings alone, for `drip api --workers N` (one runtime per process)."""

from __future__ import annotations

from fastapi import FastAPI

from drip.api.app import create_app
from drip.config import Settings
from drip.logs import configure_logging
from drip.runtime import build_runtime


def app_from_settings() -> FastAPI:
    """An app for this process: its own database pool, broker connection and transport."""
    configure_logging(json=True)
    return create_app(build_runtime(Settings()))
