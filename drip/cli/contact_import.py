"""`drip contacts import FILE.csv --sequence ID`: bring existing subscribers into a sequence.

The file's columns and the row checks are in `drip.contacts.imports`; the consent rule and
the batches in `drip.contacts.importer`. Exit 0 when the file was read (refused rows are
in the summary), 2 when the file or an option cannot be used.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape

from drip.audit import current_operator, record_audit
from drip.cli.common import console, errors, load_settings, opened_runtime
from drip.cli.output import JSON, print_json, table
from drip.cli.progress_bar import progress_bar
from drip.contacts.importer import ImportSummary, import_contacts
from drip.contacts.imports import ImportFileError, parse_time, read_import_file
from drip.db import transaction, utcnow
from drip.errors import UnknownSequence
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import Sequence

#: Refusals listed one by one in the summary for people; `--json` lists them all.
LISTED_REFUSALS = 20


def import_file(
    file: Path = typer.Argument(
        ..., metavar="FILE.csv", help="A CSV file with a header row; see the README."
    ),
    sequence_id: str = typer.Option(
        ..., "--sequence", metavar="ID", help="The sequence to enrol them in."
    ),
    start_at: str | None = typer.Option(
        None,
        "--start-at",
        metavar="STEP",
        help="Start at this step (its id), due now; the steps before it are recorded as "
        "passed (skipped: before_import_start), never sent.",
    ),
    skip_elapsed: str | None = typer.Option(
        None,
        "--skip-elapsed",
        metavar="SIGNUP_COLUMN",
        help="Each row signed up at this column's time: steps already due are recorded as "
        "passed (skipped: before_import_start), never sent.",
    ),
    consent_at: str | None = typer.Option(
        None,
        "--consent-at",
        metavar="TIME",
        help="Consent time (ISO 8601) for rows whose consent_at is empty.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and count; write nothing."),
    as_json: bool = JSON,
) -> None:
    """Import subscribers from a CSV file into a sequence: no confirmation email, nobody
    who unsubscribed, and each row's consent time recorded."""
    if start_at is not None and skip_elapsed is not None:
        _usage("--start-at and --skip-elapsed cannot be used together")
    now = utcnow()
    default_consent = None
    if consent_at is not None:
        default_consent = parse_time(consent_at)
        if default_consent is None or default_consent > now:
            _usage(f"--consent-at: {consent_at!r} is not an ISO 8601 time in the past")
    try:
        parsed = read_import_file(
            file, now=now, default_consent_at=default_consent, signup_column=skip_elapsed
        )
    except ImportFileError as exc:
        _usage(str(exc))
    if default_consent is not None:
        errors.print(
            f"warning: rows without a consent_at are recorded as consenting at "
            f"{default_consent:%Y-%m-%d %H:%M} UTC (--consent-at)",
            markup=False,
        )
    settings = load_settings()
    with opened_runtime(settings) as runtime:
        sequence = _sequence(runtime.catalog, sequence_id, start_at)
        with progress_bar(label="importing", quiet=as_json) as show:
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                done += count
                show(done, len(parsed.rows))

            summary = import_contacts(
                runtime.sessions,
                parsed.rows,
                sequence=sequence,
                now=now,
                start_at=start_at,
                dry_run=dry_run,
                progress=advance,
            )
        summary.rows += len(parsed.refusals)
        summary.refusals[:0] = parsed.refusals
        if not dry_run:
            with transaction(runtime.sessions) as session:
                record_audit(
                    session,
                    action="contacts.import",
                    operator=current_operator(None),
                    now=now,
                    reason=f"import of {file.name}",
                    target=sequence.id,
                    details={k: v for k, v in summary.as_dict().items() if k != "refusals"},
                )
    if as_json:
        print_json({"file": str(file), "sequence": sequence.id, **summary.as_dict()})
    else:
        _print_summary(summary)


def _usage(message: str) -> NoReturn:
    errors.print(message, markup=False)
    raise typer.Exit(2)


def _sequence(catalog: SequenceCatalog, sequence_id: str, start_at: str | None) -> Sequence:
    """The sequence to import into, or exit 2 saying why it cannot take an import."""
    try:
        sequence = catalog.get(sequence_id).definition
    except UnknownSequence as exc:
        _usage(str(exc))
    if start_at is not None and sequence.step(start_at) is None:
        steps = ", ".join(s.id for s in sequence.steps)
        _usage(f"--start-at: sequence {sequence.id} has no step {start_at!r} (steps: {steps})")
    if sequence.double_opt_in:
        _usage(
            f"sequence {sequence.id} asks every subscriber to confirm (double_opt_in), and an "
            "import sends no confirmation email: it cannot enrol anyone into it"
        )
    return sequence


def _print_summary(summary: ImportSummary) -> None:
    """The counts as a table, then the first refusals with their row and column."""
    verb = "would be " if summary.dry_run else ""
    rows: list[tuple[str, int]] = [
        (f"{verb}imported", summary.imported),
        (f"{verb}enrolled, every step already elapsed", summary.completed),
        ("already enrolled", summary.already_enrolled),
    ]
    rows += [(f"refused: {reason}", n) for reason, n in summary.refused_by_reason().items()]
    rows.append(("rows read", summary.rows))
    table("dry run: nothing written" if summary.dry_run else "import", ("", "rows"), rows)
    refusals = sorted(summary.refusals, key=lambda r: r.row)
    for refusal in refusals[:LISTED_REFUSALS]:
        console.print(
            f"row {refusal.row}, {escape(refusal.column or 'row')}: {escape(refusal.reason)}: "
            f"{escape(refusal.detail)}",
            highlight=False,
        )
    if len(refusals) > LISTED_REFUSALS:
        console.print(f"... and {len(refusals) - LISTED_REFUSALS} more (--json lists them all)")
