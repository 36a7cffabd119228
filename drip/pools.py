"""How many database connections each drip process may hold: one rule, from its settings.

Every process builds its one engine here (`process_engine`). It keeps
max(DRIP_DB_POOL_SIZE, its worker threads) connections open once used, and opens up to
DRIP_DB_MAX_OVERFLOW more under load, closed as soon as they are returned; a thread that
finds every connection taken waits for one (SQLAlchemy's pool timeout), so the process
never holds more than `PoolLimits.most`. The worker threads are DRIP_WORKER_THREADS, which
`drip worker --threads N` sets to N for its processes. The README's production section
turns this into a sizing rule for a whole deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from drip.config import DatabasePooling, Settings
from drip.db import create_db_engine


@dataclass(frozen=True)
class PoolLimits:
    """The connections one process may hold: `size` kept open once used, and up to
    `overflow` more under load, closed as soon as they are returned."""

    size: int
    overflow: int

    @property
    def most(self) -> int:
        """The most connections the process ever holds at once."""
        return self.size + self.overflow


def process_pool(settings: Settings) -> PoolLimits:
    """The pool of a process with these settings: at least one kept connection per worker
    thread, so a busy worker thread never waits for a connection another returned."""
    return PoolLimits(
        size=max(settings.db_pool_size, settings.worker_threads),
        overflow=settings.db_max_overflow,
    )


def process_engine(settings: Settings) -> Engine:
    """The engine of a process with these settings, bounded by `process_pool`; through
    PgBouncer in transaction pooling, it prepares no statement on the server."""
    pool = process_pool(settings)
    return create_db_engine(
        settings.database_url,
        pool_size=pool.size,
        max_overflow=pool.overflow,
        transaction_pooling=settings.database_pooling is DatabasePooling.TRANSACTION,
    )
