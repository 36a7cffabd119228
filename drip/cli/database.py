"""`drip db upgrade`."""

from __future__ import annotations

import typer

from drip.cli.common import console, load_settings
from drip.migrate import upgrade_database

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Apply the Alembic migrations up to the newest (PostgreSQL and SQLite)."""
    settings = load_settings()
    upgrade_database(settings.database_url)
    console.print("database is up to date")
