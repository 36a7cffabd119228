"""The API built from settings alone, for `drip api --workers N` (one runtime per process)."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from drip.api.app import create_app
from drip.config import Settings
from drip.logs import configure_logging
from drip.runtime import build_runtime


def app_from_settings() -> FastAPI:
    """An app for this process: its own database pool, broker connection and transport.

    What start-up built (modules, the app, the sequences: some 170,000 objects) lives as
    long as the process, so it is moved out of the collector's reach (`gc.freeze`): a full
    collection scanned all of it, 130 to 170 ms here during which the process answered
    nothing, and those pauses made the API's slowest signups.
    """
    configure_logging(json=True)
    app = create_app(build_runtime(Settings()))
    gc.collect()
    gc.freeze()
    return app
