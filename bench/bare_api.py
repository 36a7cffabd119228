"""A bare signup endpoint, the yardstick for drip's `POST /signups`: FastAPI on the same
uvicorn settings and worker count as `drip api`, validating the same body (drip's own
`SignupRequest`), then one INSERT and COMMIT on the same PostgreSQL, through the same
driver and pool (SQLAlchemy over psycopg). No contact upsert, enrolment, planning, rate
limit or enqueue: what is left is the price of the framework, the body and one write.

Run: BENCH_BARE_DATABASE_URL=postgresql://... python bench/bare_api.py PORT WORKERS
"""

from __future__ import annotations

import os
import sys

import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from drip.db import create_db_engine
from drip.signup.request import SignupRequest

#: The table the bare endpoint writes, created by `prepare`.
TABLE = "bare_signups"


def prepare(url: str) -> None:
    """Create the bare endpoint's table in database `url`."""
    engine = create_db_engine(url, pool_size=1)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        connection.execute(
            text(
                f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, email text NOT NULL, "
                "first_name text, sequence text, timezone text, source text, "
                "created_at timestamptz NOT NULL DEFAULT now())"
            )
        )
    engine.dispose()


def create_app() -> FastAPI:
    """The bare app on `BENCH_BARE_DATABASE_URL` (uvicorn's factory)."""
    engine = create_db_engine(os.environ["BENCH_BARE_DATABASE_URL"], pool_size=5)
    insert = text(
        f"INSERT INTO {TABLE} (email, first_name, sequence, timezone, source) "
        "VALUES (:email, :first_name, :sequence, :timezone, :source)"
    )
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/signups", status_code=202)
    def signup(body: SignupRequest) -> dict[str, str]:
        with engine.begin() as connection:
            connection.execute(
                insert,
                {
                    "email": body.email,
                    "first_name": body.first_name,
                    "sequence": body.sequence,
                    "timezone": body.timezone,
                    "source": body.source,
                },
            )
        return {"status": "accepted"}

    return app


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run(
        "bare_api:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=int(sys.argv[2]),
        log_config=None,
        proxy_headers=False,
    )
