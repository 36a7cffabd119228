"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
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
    import shutil

    target = tmp_path / "sequences"
    shutil.copytree(TEST_SEQUENCES, target)
    return target


#: Screenshots and other files tests leave for people to look at.
ARTIFACTS = REPO / "test-artifacts"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start each run with no screenshots from an earlier one."""
    import shutil

    shutil.rmtree(ARTIFACTS, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the screenshots this run wrote, so a reader can open them."""
    written = sorted(p for p in ARTIFACTS.rglob("*.png")) if ARTIFACTS.exists() else []
    if written:
        terminalreporter.section("screenshots")
        for path in written:
            terminalreporter.write_line(str(path))
