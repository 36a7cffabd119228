"""Alembic environment: the URL comes from drip's own config, never from alembic.ini."""

from __future__ import annotations

from alembic import context

from drip.db import create_db_engine
from drip.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("drip.migrate sets sqlalchemy.url; run `drip db upgrade`")

engine = create_db_engine(url, pool_size=1)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
