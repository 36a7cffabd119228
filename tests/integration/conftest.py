"""Real PostgreSQL (a fresh database per test, cloned from a migrated template), real Redis
(a namespace per test, deleted afterwards), a real Dramatiq worker and a fake SendGrid.

Every test here is marked `integration` (by tests/conftest.py). Locally a missing service
skips these tests; under CI (`CI=true`) it fails them (`tests.conftest.require`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import psycopg
import pytest
import redis

from drip.config import Settings
from drip.migrate import upgrade_database
from drip.runtime import QUEUES, Runtime, build_runtime
from drip.testing.fake_sendgrid import FakeSendGrid
from drip.testing.signing import WebhookSigner
from tests.conftest import require, sendgrid_schema_dir

PG_ADMIN_URL = os.environ.get(
    "DRIP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DRIP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

WEBHOOK_KEYS = WebhookSigner()


def _unavailable(what: str, exc: Exception) -> None:
    require(False, f"{what}, which is not reachable: {exc}")


def _db_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, not yet migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migration.db'}"
        return
    name = f"drip_migration_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    yield _db_url(name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated once per session; each test's database is cloned from it."""
    name = f"drip_template_{os.getpid()}"
    try:
        _admin(f"DROP DATABASE IF EXISTS {name}")
        _admin(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    upgrade_database(_db_url(name))
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test alone."""
    name = f"drip_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield _db_url(name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A Redis key namespace for this test alone, deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        _unavailable("Redis", exc)
    namespace = f"drip-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    for key in client.scan_iter(f"{namespace}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    schema = sendgrid_schema_dir() / "mail_send.schema.json"
    if not schema.exists():
        pytest.fail(f"SendGrid's schema is missing at {schema}; set DRIP_SENDGRID_SHARED_DIR")
    fake = FakeSendGrid(schema).start()
    yield fake
    fake.stop()
    assert not fake.violations, f"drip sent bodies that break SendGrid's schema: {fake.violations}"


@pytest.fixture
def settings(
    database_url: str,
    redis_namespace: str,
    fake_sendgrid: FakeSendGrid,
    sequences_dir: Path,
    tmp_path: Path,
) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_namespace=redis_namespace,
        transport="sendgrid",
        sendgrid_api_key=fake_sendgrid.api_key,
        sendgrid_host=fake_sendgrid.url,
        sendgrid_timeout=5,
        sequences_dir=sequences_dir,
        outbox_dir=tmp_path / "outbox",
        secret_key="test-secret",
        base_url="https://drip.test",
        default_sequence="quick",
        scheduler_interval=0.05,
        queue_lease=30,
        send_lease=30,
        send_min_backoff=0.05,
        send_max_backoff=0.5,
        send_max_attempts=4,
        worker_threads=4,
        signup_rate_per_ip="10000/minute",
        signup_rate_per_address="1000/hour",
        sendgrid_webhook_public_key=WEBHOOK_KEYS.public_key,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    rt.close()


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[dramatiq.Worker]:
    """A real Dramatiq worker on the test's Redis namespace."""
    w = dramatiq.Worker(runtime.broker, worker_threads=4, worker_timeout=50, queues=set(QUEUES))
    w.start()
    yield w
    w.stop(timeout=5_000)


def drain(runtime: Runtime, worker: dramatiq.Worker, *, timeout_ms: int = 20_000) -> None:
    """Wait until every queue (and its delayed retries) is empty and the worker idle."""
    for queue in QUEUES:
        runtime.broker.join(queue, timeout=timeout_ms)
    worker.join()
