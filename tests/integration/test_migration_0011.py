"""Migration 0011 builds what the models describe for tracked links and subject tests
(`link_clicks`, `deliveries.subject_variant`), on PostgreSQL and SQLite, and goes back down."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from drip.db import create_db_engine
from drip.migrate import alembic_config
from drip.models import Base


def test_0011_builds_what_the_models_describe_and_goes_back(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0011")
    engine = create_db_engine(empty_database)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": _ours}
            )
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        assert "subject_variant" in {c["name"] for c in inspect(engine).get_columns("deliveries")}
        command.downgrade(config, "0010")
        inspector = inspect(engine)
        assert "link_clicks" not in inspector.get_table_names()
        assert "subject_variant" not in {c["name"] for c in inspector.get_columns("deliveries")}
    finally:
        engine.dispose()


def _ours(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    """Compare `link_clicks` whole, and of `deliveries` only the column 0011 adds."""
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
    if table == "link_clicks":
        return True
    return kind == "column" and table == "deliveries" and name == "subject_variant"
