"""`drip db upgrade`: Alembic migrations to head, configured from drip's settings."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def migrations_dir() -> Path:
    """The migration scripts: inside an installed wheel, else the source tree's `migrations/`."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("drip's migrations/ folder was not found")


def alembic_config(database_url: str) -> Config:
    """An Alembic config for `database_url`, with no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str) -> None:
    """Migrate the database at `database_url` to the newest revision."""
    command.upgrade(alembic_config(database_url), "head")
