"""What every command shares: settings, a console, and a clean exit on bad sequences."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from drip.cli.console import CliConsole
from drip.config import Settings
from drip.db import create_db_engine, session_factory, transaction
from drip.errors import SequenceError, WebhookConfigError
from drip.runtime import Runtime, build_runtime, load_catalog
from drip.sequences.catalog import SequenceCatalog
from drip.webhooks.config_file import load_endpoints_file

console = CliConsole()
errors = CliConsole(stderr=True)

#: Who does it, for the audit trail of every operator's write.
BY = typer.Option(None, "--by", help="Operator name (default: $USER).")


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
    with exit_on_bad_sequences():
        runtime = build_runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close()


def checked_catalog(settings: Settings) -> SequenceCatalog:
    """The sequences in force for `settings`, checked as the runtime checks them, without
    building the rest of a runtime; `webhooks.yaml` beside them is checked too. Bad files
    print their problems and exit 1."""
    with exit_on_bad_sequences():
        catalog = load_catalog(settings)
        load_endpoints_file(settings.sequences_dir, development=not settings.is_production)
        return catalog


@contextmanager
def exit_on_bad_sequences() -> Iterator[None]:
    """Turn a `SequenceError` (or a `WebhookConfigError` of `webhooks.yaml`) raised in the
    block into its problems on stderr and exit 1."""
    try:
        yield
    except (SequenceError, WebhookConfigError) as exc:
        report_sequence_error(exc)
        raise typer.Exit(1) from exc


def report_sequence_error(exc: SequenceError | WebhookConfigError) -> None:
    """Print each problem on its own line, as compilers do."""
    # Plain lines, never wrapped: editors and CI annotate from `file:line: field: message`.
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    files = "webhooks.yaml" if isinstance(exc, WebhookConfigError) else "the sequence files"
    errors.print(f"[red]{len(exc.problems)} problem(s) in {files}[/red]")


@contextmanager
def database_session() -> Iterator[Session]:
    """One transaction on the configured database alone (no sequences, Redis or transport),
    committed when the block ends, rolled back when it raises."""
    engine = create_db_engine(load_settings().database_url, pool_size=1)
    try:
        with transaction(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def exit_on(*refusals: type[Exception], code: int = 1) -> Iterator[None]:
    """Turn one of `refusals` raised in the block into its message on stderr and exit `code`."""
    try:
        yield
    except refusals as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(code) from exc
