"""CLI output read by scripts and CI logs is never wrapped; on a terminal, tables fit it.

The CLI runs as a real process, its stdout a pipe (or a pseudo-terminal), with
`COLUMNS=40`: narrower than every line it prints here.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

#: Columns the environment claims: Rich wraps at this width when it wraps at all.
COLUMNS = 40


def drip(*args: str, sequences: Path, cwd: Path, terminal: bool = False) -> str:
    """Run `python -m drip ARGS` with COLUMNS=40; its stdout, from a pipe or a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIP_")}
    env |= {"COLUMNS": str(COLUMNS), "DRIP_SEQUENCES_DIR": str(sequences), "TERM": "xterm"}
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    command = [sys.executable, "-m", "drip", *args]
    if not terminal:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout
    controller, follower = pty.openpty()
    try:
        with subprocess.Popen(command, cwd=cwd, env=env, stdout=follower, stderr=subprocess.PIPE):
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(controller)
    # Styles (bold, italic) are escape sequences, not columns
    return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """The shipped sequences under a long path, as in a clean clone in a deep folder."""
    target = tmp_path / "a-clean-clone-in-a-rather-long-temporary-path" / "sequences"
    shutil.copytree(REPO / "sequences", target)
    return target


def test_validate_prints_each_sequence_on_one_line_into_a_pipe(
    shipped: Path, tmp_path: Path
) -> None:
    out = drip("sequences", "validate", sequences=shipped, cwd=tmp_path)
    line = f"ok  {shipped / 'executive-resume.yaml'}  executive-resume  11 steps  version "
    assert len(line) > 2 * COLUMNS
    assert re.search(rf"^{re.escape(line)}[0-9a-f]+$", out, re.MULTILINE), out


def test_a_table_into_a_pipe_keeps_each_row_on_one_line(shipped: Path, tmp_path: Path) -> None:
    out = drip("sequences", "simulate", "executive-resume", sequences=shipped, cwd=tmp_path)
    steps = yaml.safe_load((shipped / "executive-resume.yaml").read_text())["steps"]
    rows = [line for line in out.splitlines() if line.startswith("│")]
    # One line per step, each carrying its id and the end of its subject: nothing wrapped
    assert len(rows) == len(steps)
    for row, step in zip(rows, steps, strict=True):
        assert f"│ {step['id']} " in row
    assert min(len(row) for row in rows) > 2 * COLUMNS


def test_a_table_on_a_terminal_fits_its_width(shipped: Path, tmp_path: Path) -> None:
    out = drip(
        "sequences", "simulate", "executive-resume", sequences=shipped, cwd=tmp_path, terminal=True
    )
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, out
    assert max(len(line) for line in lines) <= COLUMNS
