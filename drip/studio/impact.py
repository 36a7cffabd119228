"""What the files as they are now would do to the people in flight: `plan`, read for the page.

It reads the configured database through `drip.schedule.impact.plan_changes`, the code of
`drip sequences plan`, in a transaction that is rolled back; with no database configured, or
one that cannot be read, it says so in a sentence instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from drip.db import create_db_engine, session_factory, utcnow
from drip.schedule.impact import plan_changes
from drip.sequences.catalog import SequenceCatalog


def database_configured(url: str | None) -> bool:
    """Whether `url` names a database that exists (a SQLite file that is there, or a server)."""
    if not url:
        return False
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        return bool(path) and path != ":memory:" and Path(path).is_file()
    return True


def read_impact(
    catalog: SequenceCatalog | None, database_url: str | None, *, daily_cap: int = 0
) -> dict[str, Any]:
    """The page's impact panel: `plan`'s groups per sequence, with what the daily cap
    (`daily_cap`, 0: none) would postpone, or a sentence saying why not."""
    if not database_configured(database_url):
        return {
            "available": False,
            "message": "No database is configured (DRIP_DATABASE_URL), so there is no one in"
            " flight to show the effect on.",
        }
    if catalog is None:
        return {
            "available": False,
            "message": "The files have problems: fix them to see their effect on the people"
            " in flight.",
        }
    assert database_url is not None
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with session_factory(engine)() as session:
            try:
                impacts = plan_changes(session, catalog, now=utcnow(), daily_cap=daily_cap)
            finally:
                session.rollback()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return {"available": False, "message": f"The database could not be read: {reason}"}
    finally:
        engine.dispose()
    return {"available": True, "impacts": [i.as_dict() for i in impacts]}
