"""`drip` imports a command's module only when that command is used: `drip worker` and
`drip scheduler` start without the API's stack (FastAPI, uvicorn) or the other commands',
and `drip --help` still lists every command in the same order with the same help."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from drip.cli import lazy
from drip.cli.main import DripCommands, app
from tests.conftest import REPO

#: What `drip --help` lists, in order (the public contract's commands and groups).
COMMANDS = [
    "run",
    "api",
    "scheduler",
    "worker",
    "enroll",
    "studio",
    "resend",
    "retry",
    "stats",
    "dead-letters",
    "db",
    "sequences",
    "contacts",
    "keys",
    "webhooks",
    "deliveries",
]

#: The API's stack, which only `drip run` and `drip api` need.
API_STACK = ("fastapi", "uvicorn", "starlette", "drip.api")


def run_drip(argv: list[str], then: str) -> str:
    """What a fresh interpreter prints with `then` after running `drip <argv>`."""
    code = (
        "import gc, sys\n"
        "from drip.cli.main import app\n"
        "try:\n"
        f"    app({argv!r}, prog_name='drip')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print({then})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def loaded_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has loaded after running `drip <argv>`."""
    return set(run_drip(argv, "' '.join(sys.modules)").split())


def of(modules: set[str], *packages: str) -> set[str]:
    """The modules in `modules` that are one of `packages` or inside one."""
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def test_the_worker_and_the_scheduler_start_without_the_api_stack() -> None:
    for command in ("worker", "scheduler"):
        loaded = loaded_after([command, "--help"])
        assert "drip.cli.processes" in loaded
        assert not of(loaded, *API_STACK), command
        assert not of(loaded, "drip.cli.contacts", "drip.cli.sequences", "drip.cli.servers")


def test_the_worker_command_imports_what_its_forked_processes_need() -> None:
    # Worker processes fork from the command's process: what it imported, they need not.
    loaded = loaded_after(["worker", "--help"])
    assert {"drip.runtime", "drip.worker", "psycopg", "httpcore"} <= loaded


def test_importing_the_command_tree_imports_no_command() -> None:
    code = "import sys, drip.cli.main; print(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    loaded = set(result.stdout.split())
    assert "drip.cli.main" in loaded
    assert not of(loaded, "drip.cli.processes", "drip.cli.servers", "drip.cli.contacts")
    assert not of(loaded, "drip.runtime", *API_STACK)


def test_a_command_module_is_frozen_out_of_the_collector_once_imported() -> None:
    enabled, frozen = run_drip(
        ["worker", "--help"], "gc.isenabled(), gc.get_freeze_count()"
    ).split()
    # The collector runs again, and what the import built (drip.runtime's modules, classes
    # and functions, and more) is out of its reach.
    assert enabled == "True"
    assert int(frozen) > 50_000


def test_help_lists_every_command_in_order_with_its_help() -> None:
    assert list(DripCommands.sources) == COMMANDS
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = [line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")]
    assert [name for name in listed if name in COMMANDS] == COMMANDS
    assert "Dramatiq's own worker over drip's broker" in result.output
    assert "The database schema." in result.output
    assert "Email drip campaigns: sequences as code" in result.output


def test_a_group_loaded_on_demand_keeps_its_commands() -> None:
    result = CliRunner().invoke(app, ["db", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "upgrade" in result.output
    assert "prune" in result.output


def test_a_mistyped_command_is_still_answered_with_the_nearest() -> None:
    result = CliRunner().invoke(app, ["workr"])
    assert result.exit_code == 2
    assert "Did you mean 'worker'?" in result.output


def test_a_command_whose_import_fails_is_not_reported_as_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a command module whose import raises KeyError (a missing setting, a bug)
    def broken(name: str, source: str) -> None:
        raise KeyError("DRIP_SOMETHING")

    monkeypatch.setattr(lazy, "build_command", broken)
    commands = lazy.CommandsOnDemand({"worker": "drip.cli.processes:worker"})
    # Then looking it up (as Click does, with .get) raises, never "no such command"
    with pytest.raises(RuntimeError, match="'worker' could not be built: KeyError"):
        commands.get("worker")
    # And a name that is not a command is still simply missing
    assert commands.get("nosuch") is None
