"""Run the studio: on 127.0.0.1 only, and never where DRIP_ENV=production.

The studio is a tool for the person editing the files, on their own machine: it binds the
loopback address (no option widens it), and a production environment refuses to start it,
since it would render with the production key and could send test emails from there.
"""

from __future__ import annotations

import threading
import webbrowser
from functools import partial

import uvicorn

from drip.config import Settings
from drip.errors import DripError
from drip.runtime import build_transport
from drip.studio.app import StudioConfig, create_studio_app
from drip.studio.impact import database_configured

#: The only address the studio listens on.
HOST = "127.0.0.1"

#: The studio's port unless --port says otherwise.
DEFAULT_PORT = 8025


class StudioRefused(DripError):
    """The studio cannot run with these settings (production, a missing folder)."""


def studio_config(settings: Settings) -> StudioConfig:
    """What the studio needs of `settings`; raise StudioRefused in production."""
    if settings.is_production:
        raise StudioRefused(
            "drip studio is a local preview for editing sequences and does not run with"
            " DRIP_ENV=production; run it on your own machine, on a copy of the files"
        )
    folder = settings.sequences_dir
    if not folder.is_dir():
        raise StudioRefused(f"the sequences folder {folder} does not exist (DRIP_SEQUENCES_DIR)")
    explicit = "database_url" in settings.model_fields_set
    url = settings.database_url
    return StudioConfig(
        folder=folder,
        postal_address=settings.resolved_postal_address(),
        base_url=settings.base_url,
        test_recipients=settings.test_recipient_addresses,
        secret_key=settings.resolved_secret_key(),
        transport=partial(build_transport, settings),
        database_url=url if explicit or database_configured(url) else None,
        daily_cap=settings.max_emails_per_day,
    )


def studio_server(config: StudioConfig, port: int = DEFAULT_PORT) -> uvicorn.Server:
    """A uvicorn server for the studio on 127.0.0.1:`port` (not yet started)."""
    return uvicorn.Server(
        uvicorn.Config(
            create_studio_app(config),
            host=HOST,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )


def run_studio(settings: Settings, *, port: int = DEFAULT_PORT, open_browser: bool = False) -> None:
    """Serve the studio until interrupted; open it in a browser when asked."""
    server = studio_server(studio_config(settings), port)
    url = f"http://{HOST}:{port}/"
    print(f"drip studio: {url}  (watching {settings.sequences_dir}; Ctrl-C stops it)")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    server.run()
