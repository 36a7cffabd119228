"""Engine and sessions for PostgreSQL and SQLite, and the clock every stored time uses.

Connections are bounded per process (`drip.pools` sizes each process's engine). Through
PgBouncer in transaction pooling, a client's consecutive transactions may run on different
server connections, so a statement prepared on one is unknown to the next ("prepared
statement ... does not exist") or collides with another client's ("... already exists"):
`transaction_pooling=True` turns off psycopg's automatic prepared statements. Everything
else drip keeps on a connection is transaction-scoped (advisory locks are
`pg_advisory_xact_lock`, no `SET` outside a transaction), so it is safe there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, func
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeEngine


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def create_db_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    transaction_pooling: bool = False,
) -> Engine:
    """An engine for `url`. PostgreSQL: at most `pool_size + max_overflow` connections
    (`max_overflow` defaults to `pool_size`), and no server-side prepared statements when
    `transaction_pooling` (PgBouncer in transaction mode). SQLite gets WAL, a busy timeout
    and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # psycopg prepares a statement on the server after its 5th run on a connection; None: never.
    connect_args = {"prepare_threshold": None} if transaction_pooling else {}
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_postgresql(engine: Engine) -> bool:
    """Whether row locks (`FOR UPDATE SKIP LOCKED`, `FOR SHARE`) are available."""
    return engine.dialect.name == "postgresql"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One session in one transaction: committed on success, rolled back on error."""
    with sessions() as session, session.begin():
        yield session


def upsert_statement(session_or_engine: Session | Engine, table: Any) -> Any:
    """An INSERT that supports `.on_conflict_do_nothing()` on PostgreSQL and SQLite."""
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return upsert_for(bind.dialect.name, table)


def upsert_for(dialect: str, table: Any) -> Any:
    """`upsert_statement` by dialect name, for statements built once and reused."""
    return pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)


def unnest_rows(columns: dict[str, TypeEngine[Any]], name: str = "v") -> Any:
    """PostgreSQL: rows given column by column, as a derived table (`unnest` of arrays);
    bind each column's values as `unnest_params` names them.

    A statement over N rows then has one parameter per column, whatever N is: its text
    stays the same, so it is built, compiled and parsed by the driver once.
    """
    arrays = [bindparam(f"{name}_{column}", type_=ARRAY(kind)) for column, kind in columns.items()]
    return (
        func.unnest(*arrays)
        .table_valued(*[sql_column(column, kind) for column, kind in columns.items()])
        .render_derived(name=name)
    )


def unnest_params(values: dict[str, list[Any]], name: str = "v") -> dict[str, list[Any]]:
    """The parameters of `unnest_rows(..., name)`: each column's values, in row order."""
    return {f"{name}_{column}": column_values for column, column_values in values.items()}
