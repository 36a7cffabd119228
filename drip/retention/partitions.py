"""Monthly partitions of `provider_events` on PostgreSQL, by `received_at`.

Why `received_at` and not `occurred_at`: drip sets `received_at` itself when it stores an
event, so it is never NULL, never in the future and only grows; a closed month therefore
gets no new rows and can be counted once and later dropped whole. `occurred_at` is the
provider's clock, may be missing, and a late or replayed batch would write into months
already counted.

A DEFAULT partition catches a row whose month has no partition yet (the scheduler creates
them months ahead, so that is only a safety net). Creating a partition whose range has rows
in the default one moves those rows into it first, as PostgreSQL refuses otherwise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

#: The partitioned table.
PARENT = "provider_events"

#: The partition that holds rows of months with no partition of their own.
DEFAULT_PARTITION = "provider_events_default"

#: Months created ahead of the current one.
MONTHS_AHEAD = 3

#: Serialises the partition work of several schedulers (`pg_advisory_xact_lock`).
LOCK_KEY = 0x64726970_0016


def month_of(moment: datetime) -> date:
    """The first day of `moment`'s month, in UTC."""
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    """The first day of the month after `month`."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_start(month: date) -> datetime:
    """Midnight UTC on the first day of `month`."""
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def partition_name(month: date) -> str:
    """The partition that holds `month`, as `provider_events_y2026m11`."""
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def month_of_partition(name: str) -> date | None:
    """The month a partition name stands for; None for the default partition or another table."""
    prefix = f"{PARENT}_y"
    if not name.startswith(prefix) or len(name) != len(prefix) + 7 or name[-3] != "m":
        return None
    try:
        return date(int(name[-7:-3]), int(name[-2:]), 1)
    except ValueError:
        return None


def is_partitioned(db: Session | Connection) -> bool:
    """True when `provider_events` is a partitioned table (PostgreSQL after migration 0012)."""
    dialect = db.dialect if isinstance(db, Connection) else db.get_bind().dialect
    if dialect.name != "postgresql":
        return False
    kind = db.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": PARENT}
    ).scalar()
    return kind in ("p", b"p")


def partitions(db: Session | Connection) -> dict[date, str]:
    """The monthly partitions that exist, by month."""
    names = db.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:name)"
        ),
        {"name": PARENT},
    ).scalars()
    found = {month_of_partition(name): name for name in names}
    return {month: name for month, name in found.items() if month is not None}


def create_partition(db: Session | Connection, month: date) -> str:
    """Create `month`'s partition (moving its rows out of the default partition if any)."""
    name = partition_name(month)
    bounds = {"lo": month_start(month), "hi": month_start(next_month(month))}
    values = "FOR VALUES FROM (:lo) TO (:hi)"
    # Table names here are this module's constants and `partition_name`'s digits.
    stray = db.execute(
        text(
            f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} "  # noqa: S608
            "WHERE received_at >= :lo AND received_at < :hi)"
        ),
        bounds,
    ).scalar()
    if not stray:
        db.execute(text(f"CREATE TABLE {name} PARTITION OF {PARENT} {_literal(values, bounds)}"))
        return name
    db.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    db.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608
            "WHERE received_at >= :lo AND received_at < :hi RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    db.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} {_literal(values, bounds)}"))
    return name


def create_ahead(
    db: Session | Connection, *, now: datetime, months: int = MONTHS_AHEAD
) -> list[str]:
    """Create the partitions of this month and the next `months` that are missing; return
    their names. Takes a transaction-level advisory lock so schedulers never race."""
    db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    have = partitions(db)
    month = month_of(now)
    created = []
    for _ in range(months + 1):
        if month not in have:
            created.append(create_partition(db, month))
        month = next_month(month)
    return created


def _literal(clause: str, bounds: dict[str, datetime]) -> str:
    # Partition bounds are DDL: no bind parameters, so the two timestamps are written in.
    for key, value in bounds.items():
        clause = clause.replace(f":{key}", f"'{value.isoformat()}'")
    return clause
