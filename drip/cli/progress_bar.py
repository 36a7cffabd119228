"""A progress bar for long commands: on stderr, so stdout stays clean for scripts, and only
when stderr is a terminal and the output is not `--json` (as `drip contacts import` does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from drip.cli.common import errors


@contextmanager
def progress_bar(*, label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar labelled `label`; yields `show(done, total)`. Nothing is drawn when `quiet`
    (`--json`, or stdout is not a terminal) or when stderr is not a terminal."""
    if quiet or not errors.writes_to_terminal():
        yield lambda _done, _total: None
        return
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
