"""The pipeline through a real PgBouncer in transaction pooling: `drip api`, `drip scheduler`
and `drip worker` connect through it; signups go through, each email is sent once, and no
process meets a prepared statement another client's transaction left on a server
connection (DRIP_DATABASE_POOLING=transaction turns psycopg's off)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from drip.config import DatabasePooling, Settings
from drip.db import create_db_engine, session_factory
from drip.models import Delivery, DeliveryStatus
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.conftest import wait_for
from tests.integration.fleet import Fleet
from tests.integration.pgbouncer import running_pgbouncer

#: Subscribers signing up; the test sequence sends each three emails.
SUBSCRIBERS = 80


def test_the_pipeline_runs_through_pgbouncer_in_transaction_pooling(
    settings: Settings, fake_sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    database = settings.database_url.rsplit("/", 1)[1]
    direct = create_db_engine(settings.database_url, pool_size=1)
    sessions = session_factory(direct)

    def sent() -> int:
        with sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status == DeliveryStatus.SENT)
                )
                or 0
            )

    # Given PgBouncer in transaction pooling with fewer server connections than drip's clients
    with running_pgbouncer(tmp_path / "pgbouncer", server_pool=3) as bouncer:
        pooled = settings.model_copy(
            update={
                "database_url": bouncer.url(database),
                "database_pooling": DatabasePooling.TRANSACTION,
                "worker_metrics_port": 0,
                "scheduler_interval": 0.2,
                "state_dir": tmp_path / ".drip",
            }
        )
        fleet = Fleet(pooled, tmp_path)
        try:
            # And the scheduler, a worker and the API, each connected through it
            fleet.start("scheduler", "scheduler")
            fleet.start("worker", "worker", "--processes", "1", "--threads", "4")
            api = fleet.start_api("api")

            # When subscribers sign up through the API
            with httpx.Client(base_url=api, timeout=30) as client, ThreadPoolExecutor(6) as pool:
                answers = list(
                    pool.map(
                        lambda n: client.post("/signups", json={"email": f"p{n}@example.com"}),
                        range(SUBSCRIBERS),
                    )
                )
            assert {answer.status_code for answer in answers} == {202}

            # Then every email is sent, each exactly once
            wait_for(lambda: sent() == SUBSCRIBERS * 3, timeout=60, what="every email sent")
            clients = [row for row in bouncer.show("CLIENTS") if row["database"] == database]
            servers = [row for row in bouncer.show("SERVERS") if row["database"] == database]
        finally:
            fleet.stop()
            direct.dispose()

    per_delivery = Counter(a.delivery_id for a in fake_sendgrid.accepted)
    assert len(per_delivery) == SUBSCRIBERS * 3
    assert set(per_delivery.values()) == {1}
    by_process = Counter(str(row["application_name"]) for row in clients)
    print(f"\nPgBouncer clients by process: {dict(by_process)}; server connections: {len(servers)}")
    # And each process was a client of PgBouncer, which used at most its 3 server connections
    assert {"api", "scheduler", "worker"} <= set(by_process)
    assert len(servers) <= 3
    # And no process, nor PgBouncer, reported a prepared statement it did not expect
    for name in [*fleet.processes, "pgbouncer/pgbouncer"]:
        text = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert "prepared statement" not in text, f"{name}:\n{text[-3000:]}"
