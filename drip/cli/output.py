"""Output helpers: Rich tables for people, JSON for scripts, durations like `24h` for filters."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from drip.cli.common import console, errors
from drip.db import utcnow
from drip.errors import DelayError
from drip.sequences.delays import parse_delay

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


def since(text: str | None) -> datetime | None:
    """`24h` -> 24 hours ago; None stays None; a bad duration exits 2."""
    if text is None:
        return None
    try:
        return utcnow() - parse_delay(text)
    except DelayError as exc:
        errors.print(f"--since: {exc}")
        raise typer.Exit(2) from exc


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on standard output, for scripts (dates as ISO 8601)."""
    print(json.dumps(data, indent=2, default=str))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a Rich table of `columns` and `rows`; every cell is text, never markup."""
    out = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        # Text, not markup: cells carry what subscribers and providers wrote (names, reasons).
        out.add_row(
            *(
                Text("-" if v is None else short_time(v) if isinstance(v, str) else str(v))
                for v in row
            )
        )
    console.print(out)


def short_time(value: str) -> str:
    """ISO timestamps shortened to minutes for tables; anything else as is."""
    try:
        return f"{datetime.fromisoformat(value):%Y-%m-%d %H:%M}"
    except ValueError:
        return value
