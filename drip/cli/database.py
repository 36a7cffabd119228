"""`drip db upgrade`, `drip db prune [--dry-run]`."""

from __future__ import annotations

from datetime import timedelta

import typer

from drip.cli.common import console, load_settings
from drip.db import create_db_engine, session_factory, utcnow
from drip.migrate import upgrade_database
from drip.retention.prune import plan_prune, prune

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Apply the Alembic migrations up to the newest (PostgreSQL and SQLite)."""
    settings = load_settings()
    upgrade_database(settings.database_url)
    console.print("database is up to date")


@app.command("prune")
def prune_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; change nothing."),
) -> None:
    """Count closed months of provider events, then remove raw events older than
    DRIP_EVENT_RETENTION days (contacts, suppressions, deliveries and the audit log stay)."""
    settings = load_settings()
    engine = create_db_engine(settings.database_url)
    retention = timedelta(days=settings.event_retention)
    try:
        with session_factory(engine)() as session, session.begin():
            now = utcnow()
            if dry_run:
                plan = plan_prune(session, now=now, retention=retention)
            else:
                plan = prune(session, now=now, retention=retention)
    finally:
        engine.dispose()
    verb = "would" if dry_run else "did"
    console.print(f"retention: {settings.event_retention} days (before {plan.cutoff:%Y-%m-%d})")
    for item in plan.months:
        console.print(("keep " if item.kept_because else f"{verb} remove ") + item.describe())
    console.print(
        f"{verb} remove {plan.events:,} provider events and {plan.event_ids:,} seen event ids"
    )
