"""`drip worker` checks the sequence files once, before any worker process starts, and the
processes Dramatiq forks reuse that checked catalog; bad files or settings stop `drip
worker` and `drip scheduler` before anything starts."""

from __future__ import annotations

import gc
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import dramatiq.broker
import pytest
from dramatiq.cli import import_broker
from typer.testing import CliRunner

import drip.cli.processes as processes
import drip.worker as worker_module
from drip.cli.main import app
from drip.config import Settings
from drip.runtime import Runtime, build_runtime, load_catalog
from drip.sequences.catalog import SequenceCatalog


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, sequences_dir: Path, tmp_path: Path) -> Path:
    """The environment of `drip worker` on the test sequences, with nothing to connect to:
    SQLite in `tmp_path` and a Redis address nobody listens on (nothing here connects)."""
    for name in [n for n in os.environ if n.startswith("DRIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DRIP_DATABASE_URL", f"sqlite:///{tmp_path / 'drip.db'}")
    monkeypatch.setenv("DRIP_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DRIP_SEQUENCES_DIR", str(sequences_dir))
    monkeypatch.setenv("DRIP_SECRET_KEY", "test-secret")
    monkeypatch.setenv("DRIP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DRIP_WORKER_METRICS_PORT", "0")
    monkeypatch.setattr("sys.argv", ["drip"])  # the command rewrites it for Dramatiq's restart
    monkeypatch.setattr(worker_module, "_handed_down", {})
    return sequences_dir


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[SequenceCatalog]:
    """Every catalog loaded from files (`SequenceCatalog.load`) during the test."""
    loaded: list[SequenceCatalog] = []
    real = SequenceCatalog.load.__func__  # type: ignore[attr-defined]

    def load(cls: type[SequenceCatalog], *args: Any, **kwargs: Any) -> SequenceCatalog:
        catalog: SequenceCatalog = real(cls, *args, **kwargs)
        loaded.append(catalog)
        return catalog

    monkeypatch.setattr(SequenceCatalog, "load", classmethod(load))
    return loaded


def forked_worker_process(monkeypatch: pytest.MonkeyPatch, built: list[Runtime]) -> list[Namespace]:
    """Stand in for Dramatiq's main: instead of forking, do here what each forked worker
    process does first (import the broker from the arguments the command gave). The fork
    copies the command's memory, which this process shares already."""
    handed: list[Namespace] = []
    monkeypatch.setattr(dramatiq.broker, "global_broker", dramatiq.broker.global_broker)
    monkeypatch.setattr(worker_module, "configure_logging", lambda **_: None)

    def spy(settings: Settings, **kwargs: Any) -> Runtime:
        runtime = build_runtime(settings, **kwargs)
        built.append(runtime)
        return runtime

    monkeypatch.setattr(worker_module, "build_runtime", spy)

    def main(arguments: Namespace) -> int:
        handed.append(arguments)
        import_broker(arguments.broker)  # type: ignore[no-untyped-call]
        return 0

    monkeypatch.setattr(processes, "dramatiq_main", main)
    return handed


def test_worker_processes_reuse_the_catalog_the_command_checked(
    monkeypatch: pytest.MonkeyPatch, worker_env: Path, loads: list[SequenceCatalog]
) -> None:
    # Given `drip worker`, whose Dramatiq forks worker processes
    built: list[Runtime] = []
    handed = forked_worker_process(monkeypatch, built)
    # When it starts and a worker process sets itself up
    result = CliRunner().invoke(app, ["worker", "--processes", "1", "--threads", "2"])
    assert result.exit_code == 0, result.output
    # Then the files were loaded and checked once, by the command, and the worker process
    # built its runtime (its own pool and broker) on that same catalog
    assert [a.broker for a in handed] == ["drip.worker:set_up"]
    assert len(loads) == 1
    assert len(built) == 1
    try:
        assert built[0].catalog is loads[0]
        assert dramatiq.get_broker() is built[0].broker
    finally:
        built[0].close()


def test_what_the_command_built_is_frozen_before_dramatiq_forks(
    monkeypatch: pytest.MonkeyPatch, worker_env: Path, loads: list[SequenceCatalog]
) -> None:
    # Frozen objects are out of every collection (gc.get_objects lists the collected ones):
    # no worker process's collector touches, and so copies, the pages they are on.
    collected: list[bool] = []

    def main(arguments: Namespace) -> int:
        collected.append(any(o is loads[0] for o in gc.get_objects()))
        return 0

    monkeypatch.setattr(processes, "dramatiq_main", main)
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 0, result.output
    assert collected == [False]


def test_only_a_process_on_the_same_files_reuses_the_catalog(
    worker_env: Path, tmp_path: Path
) -> None:
    checked = Settings()
    catalog = load_catalog(checked)
    worker_module.hand_down(checked, catalog)
    assert worker_module.handed_down(Settings()) is catalog
    assert worker_module.handed_down(Settings(sequences_dir=tmp_path / "other")) is None
    # The postal address is part of what the renders were checked with.
    assert worker_module.handed_down(Settings(postal_address="1 Other Street")) is None


def test_a_bad_sequence_file_stops_the_worker_before_any_process_starts(
    monkeypatch: pytest.MonkeyPatch, worker_env: Path
) -> None:
    # Given a malformed delay on the second step
    path = worker_env / "quick.yaml"
    path.write_text(path.read_text().replace("delay: 1s", "delay: soon", 1))
    monkeypatch.setattr(processes, "dramatiq_main", _no_process)
    # When the worker (or the scheduler) starts
    for command in ("worker", "scheduler"):
        result = CliRunner().invoke(app, [command])
        # Then it exits 1, naming file, line and field, and starts nothing
        assert result.exit_code == 1, result.output
        line = next(
            n for n, text in enumerate(path.read_text().splitlines(), 1) if "delay: soon" in text
        )
        assert f"{path}:{line}: steps[1].delay: 'soon' is not a delay" in result.stderr


def test_bad_settings_stop_the_worker_and_the_scheduler_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, worker_env: Path
) -> None:
    monkeypatch.setenv("DRIP_SCHEDULER_INTERVAL", "soon")
    monkeypatch.setattr(processes, "dramatiq_main", _no_process)
    for command in ("worker", "scheduler"):
        result = CliRunner().invoke(app, [command])
        assert result.exit_code == 2, result.output
        assert "DRIP_SCHEDULER_INTERVAL" in result.stderr


def _no_process(arguments: Namespace) -> int:
    raise AssertionError("Dramatiq was started")


def test_a_bad_webhooks_file_stops_the_worker_and_the_scheduler_naming_its_line(
    monkeypatch: pytest.MonkeyPatch, worker_env: Path
) -> None:
    # Given webhooks.yaml beside the sequences lists an event that does not exist (line 3)
    path = worker_env / "webhooks.yaml"
    path.write_text(
        "endpoints:\n  - url: https://crm.example.com/hooks\n"
        "    events: [email.opened]\n    secret_env: CRM_SECRET\n"
    )
    monkeypatch.setattr(processes, "dramatiq_main", _no_process)
    for command in ("worker", "scheduler"):
        # When the process starts
        result = CliRunner().invoke(app, [command])
        # Then it exits 1 naming file, line and field, before any worker process starts
        assert result.exit_code == 1, result.output
        assert f"{path}:3: endpoints[0].events: unknown event type 'email.opened'" in (
            result.stderr
        )
        assert "problem(s) in webhooks.yaml" in result.stderr
