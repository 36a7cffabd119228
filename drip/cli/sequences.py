"""`drip sequences validate`: check sequence files as the service would at start."""

from __future__ import annotations

from pathlib import Path

import typer

from drip.cli.common import console, load_settings, report_sequence_error
from drip.errors import SequenceError
from drip.sequences.catalog import SequenceCatalog

app = typer.Typer(help="Sequence files: validate them before they ship.", no_args_is_help=True)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(
        None, help="Files or folders (default: DRIP_SEQUENCES_DIR)."
    ),
) -> None:
    """Check every file and template; exit 1 with `file:line: field: message` lines."""
    settings = load_settings()
    try:
        catalog = SequenceCatalog.load(
            settings.sequences_dir,
            postal_address=settings.resolved_postal_address(),
            files=paths or None,
        )
    except SequenceError as exc:
        report_sequence_error(exc)
        raise typer.Exit(1) from exc
    for loaded in catalog:
        console.print(
            f"ok  {loaded.path}  {loaded.definition.id}  "
            f"{len(loaded.definition.steps)} steps  version {loaded.version}"
        )
