"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_SEQUENCES = REPO / "tests" / "data" / "sequences"

T = TypeVar("T")


def sendgrid_schema_dir() -> Path:
    """Where SendGrid's schema and webhook vectors are: `../shared/sendgrid` by default."""
    return Path(os.environ.get("DRIP_SENDGRID_SHARED_DIR", REPO.parent / "shared" / "sendgrid"))


def running_under_ci() -> bool:
    """True when `CI` is set to anything but empty, 0 or false (GitHub, GitLab and others
    set CI=true): there, a missing tool or service is a broken setup, not a reason to skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(available: object, what: str) -> None:
    """Skip the calling test when `available` is false, naming `what` it needs; under CI the
    test fails instead. Every test that needs a tool or service the machine may lack (a
    browser, docker-compose, root, PostgreSQL, Redis) asks through this one function."""
    if available:
        return
    if running_under_ci():
        pytest.fail(f"needs {what} (CI=true: a missing tool fails the run)")
    pytest.skip(f"needs {what}")


def require_tools(*names: str, why: str = "") -> None:
    """`require` every command in `names` on PATH (or at that absolute path)."""
    missing = [name for name in names if shutil.which(name) is None]
    require(not missing, " and ".join(missing) + (f" ({why})" if why else ""))


def wait_for(condition: Callable[[], T], *, timeout: float = 10.0, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def sequences_dir(tmp_path: Path) -> Path:
    """A private copy of the test sequences, free to edit."""
    target = tmp_path / "sequences"
    shutil.copytree(TEST_SEQUENCES, target)
    return target


#: Screenshots and other files tests leave for people to look at.
ARTIFACTS = REPO / "test-artifacts"


#: Where the tests that need PostgreSQL, Redis and a real worker live.
INTEGRATION = REPO / "tests" / "integration"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration `integration`, so `-m "not integration"`
    runs none of them (a `pytestmark` in a conftest.py marks nothing)."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start each run with no screenshots from an earlier one."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the screenshots this run wrote, so a reader can open them."""
    written = sorted(p for p in ARTIFACTS.rglob("*.png")) if ARTIFACTS.exists() else []
    if written:
        terminalreporter.section("screenshots")
        for path in written:
            terminalreporter.write_line(str(path))
