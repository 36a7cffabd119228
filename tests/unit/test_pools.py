"""Each process's database pool, read from the engine its configuration builds, stays within
the bound the README's production section documents; PgBouncer's transaction pooling turns
psycopg's prepared statements off."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from sqlalchemy import Engine, QueuePool, event
from typer.testing import CliRunner

import drip.cli.processes as processes
from drip.cli.main import app
from drip.config import DatabasePooling, Settings
from drip.pools import process_engine, process_pool

URL = "postgresql://drip@db.invalid:5432/drip"


def queue_pool(engine: Engine) -> QueuePool:
    """The engine's pool, which for PostgreSQL is SQLAlchemy's bounded `QueuePool`."""
    assert isinstance(engine.pool, QueuePool)
    return engine.pool


def most_connections(engine: Engine) -> int:
    """What the engine's pool may hold at once: kept connections plus its overflow."""
    return queue_pool(engine).size() + queue_pool(engine)._max_overflow


@pytest.fixture(autouse=True)
def no_pool_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DATABASE_POOLING", "WORKER_THREADS"):
        monkeypatch.delenv(f"DRIP_{name}", raising=False)


def worker_process_settings(monkeypatch: pytest.MonkeyPatch, threads: int) -> Settings:
    """The settings a process of `drip worker --threads N` reads: the command sets its
    environment, then hands over to Dramatiq (stopped here before any process starts)."""
    monkeypatch.setenv("DRIP_WORKER_THREADS", "4")  # restored after the test
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the command rewrites it for Dramatiq
    monkeypatch.setattr(processes, "opened_runtime", lambda _settings: _Nothing())
    monkeypatch.setattr(processes, "dramatiq_main", lambda _arguments: 0)
    result = CliRunner().invoke(app, ["worker", "--processes", "1", "--threads", str(threads)])
    assert result.exit_code == 0, result.output
    return Settings(database_url=URL)


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_api_scheduler_and_run_hold_at_most_ten_connections_by_default() -> None:
    # `drip api` (each --workers process), `drip scheduler` and `drip run` build one engine
    # from the same settings: max(DRIP_DB_POOL_SIZE=5, DRIP_WORKER_THREADS=4) + 5.
    engine = process_engine(Settings(database_url=URL))
    assert queue_pool(engine).size() == 5
    assert most_connections(engine) == 10 == process_pool(Settings(database_url=URL)).most


@pytest.mark.parametrize(("threads", "bound"), [(1, 10), (4, 10), (8, 13), (16, 21)])
def test_a_worker_process_keeps_a_connection_per_thread(
    monkeypatch: pytest.MonkeyPatch, threads: int, bound: int
) -> None:
    settings = worker_process_settings(monkeypatch, threads)
    engine = process_engine(settings)
    assert queue_pool(engine).size() >= threads
    assert most_connections(engine) == bound == max(5, threads) + 5


def test_pool_settings_bound_every_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIP_DB_POOL_SIZE", "3")
    monkeypatch.setenv("DRIP_DB_MAX_OVERFLOW", "0")
    assert most_connections(process_engine(Settings(database_url=URL, worker_threads=2))) == 3
    assert most_connections(process_engine(worker_process_settings(monkeypatch, 6))) == 6


class _Stop(Exception):
    pass


def connect_parameters(engine: Engine) -> dict[str, Any]:
    """The keyword arguments the engine gives psycopg's connect (stopped before connecting)."""
    seen: dict[str, Any] = {}

    @event.listens_for(engine, "do_connect")
    def capture(_dialect: Any, _record: Any, _args: Any, parameters: dict[str, Any]) -> None:
        seen.update(parameters)
        raise _Stop

    with pytest.raises(_Stop):
        engine.connect()
    return seen


def test_transaction_pooling_turns_prepared_statements_off() -> None:
    pooled = Settings(database_url=URL, database_pooling=DatabasePooling.TRANSACTION)
    parameters = connect_parameters(process_engine(pooled))
    assert "prepare_threshold" in parameters
    assert parameters["prepare_threshold"] is None
    # Directly on PostgreSQL, psycopg keeps preparing statements it runs often.
    assert "prepare_threshold" not in connect_parameters(process_engine(Settings(database_url=URL)))


def test_the_pooling_mode_is_named_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIP_DATABASE_POOLING", "transaction")
    assert Settings().database_pooling is DatabasePooling.TRANSACTION
    monkeypatch.setenv("DRIP_DATABASE_POOLING", "statement")
    with pytest.raises(ValueError, match="database_pooling"):
        Settings()
