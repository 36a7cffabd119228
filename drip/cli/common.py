"""What every command shares: settings, a console, and a clean exit on bad sequences."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from drip.cli.console import CliConsole
from drip.config import Settings
from drip.errors import SequenceError
from drip.runtime import Runtime, build_runtime

console = CliConsole()
errors = CliConsole(stderr=True)


def load_settings() -> Settings:
    """Settings from the environment, or exit 2 naming the bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "DRIP_" + "_".join(str(p) for p in error["loc"]).upper()
            errors.print(f"[red]setting {name or 'DRIP_*'}: {error['msg']}[/red]")
        raise typer.Exit(2) from exc


@contextmanager
def opened_runtime(settings: Settings) -> Iterator[Runtime]:
    """The runtime for `settings`; bad sequence files print their problems and exit 1."""
    try:
        runtime = build_runtime(settings)
    except SequenceError as exc:
        report_sequence_error(exc)
        raise typer.Exit(1) from exc
    try:
        yield runtime
    finally:
        runtime.close()


def report_sequence_error(exc: SequenceError) -> None:
    """Print each problem on its own line, as compilers do."""
    # Plain lines, never wrapped: editors and CI annotate from `file:line: field: message`.
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    errors.print(f"[red]{len(exc.problems)} problem(s) in the sequence files[/red]")
