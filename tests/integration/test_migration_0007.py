"""Migration 0007 builds exactly the tables the models describe (API keys, contact events,
idempotent requests), on PostgreSQL and SQLite, and goes back down cleanly; the migration
history has one head."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from drip.db import create_db_engine
from drip.migrate import alembic_config
from drip.models import Base

#: The tables 0007 creates.
TABLES = {"api_keys", "api_requests", "contact_events"}


def test_the_migration_history_has_one_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()) == 1


def test_0007_builds_what_the_models_describe_and_goes_back(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0007")
    engine = create_db_engine(empty_database)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": _only_ours}
            )
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        command.downgrade(config, "0006")
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _only_ours(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    """Compare the tables of 0007 (and their columns, indexes and constraints) only."""
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in TABLES
