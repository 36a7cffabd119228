"""Reading an import file (`drip contacts import`): rows checked one by one, no I/O beyond
the file itself.

The file is CSV (UTF-8, a header row). Its columns:

- `email` (required): the address, checked and normalised as a signup's is;
- `first_name`, `timezone`, `source`: as a signup's, by the same validators
  (`drip.signup.request.SignupRequest`); an empty `source` becomes `DEFAULT_SOURCE`;
- `consent_at`: when the subscriber gave consent, ISO 8601 (a time without an offset is
  taken as UTC; a date alone as midnight UTC); required on every row unless the command
  gives a default (`--consent-at`); never in the future;
- `attr.KEY`: one column per attribute, a string value (an empty cell sets nothing); KEY
  follows `drip.contacts.attributes.ATTRIBUTE_NAME`;
- the signup time column `--skip-elapsed` names, ISO 8601 as `consent_at`.

Any other column is a mistake (a misspelt `frist_name` would otherwise be dropped without a
word): the whole file is refused, as it is when it is not UTF-8 CSV, has no `email` column,
or is larger than `MAX_FILE_BYTES`. A row that fails a check is refused with its number
(the header is row 1, as a spreadsheet shows it), the column and the reason; an address
seen on an earlier row is refused as a duplicate.

Where an imported enrolment starts (`plan_start`): at step 1, or at `--start-at STEP`,
due now moved into the send window; with `--skip-elapsed`, at the first step whose due
time, counted from the row's signup time as if every earlier step had been sent on time,
is still ahead. The steps before the start are passed, never sent: the importer records
each as skipped (`before_import_start`), so the subscriber's progress says they were
received and the planner never goes back to them, even when the start step later leaves
the file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drip.contacts.attributes import check_changes
from drip.schedule.planner import fit_window, plan_due, subscriber_zone
from drip.sequences.definition import Sequence, Step
from drip.signup.request import SignupRequest

#: The largest file an import reads: 100,000 rows of a few columns are about 10 MB.
MAX_FILE_BYTES = 100 * 1024 * 1024
#: The columns an import knows, besides `attr.KEY` and the signup time column.
COLUMNS = ("email", "first_name", "timezone", "source", "consent_at")
#: How an attribute column's name begins.
ATTRIBUTE_PREFIX = "attr."
#: A contact's source when its row names none.
DEFAULT_SOURCE = "import"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (not CSV, no `email` column, too large...)."""


@dataclass(frozen=True)
class Refusal:
    """A row not imported: its number in the file, the column at fault (None when the row
    as a whole is refused), the reason as the summary counts it, and the detail."""

    row: int
    column: str | None
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """The refusal for `--json`."""
        return {
            "row": self.row,
            "column": self.column,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ImportRow:
    """One valid row: a normalised address and what the contact is created with."""

    row: int
    email: str
    first_name: str | None
    timezone: str | None
    source: str
    attributes: dict[str, Any]
    consent_at: datetime
    signed_up_at: datetime | None = None


@dataclass
class ParsedFile:
    """The rows of a file that passed every check, and the refusals of the others."""

    rows: list[ImportRow] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many data rows the file holds."""
        return len(self.rows) + len(self.refusals)


def read_import_file(
    path: Path,
    *,
    now: datetime,
    default_consent_at: datetime | None = None,
    signup_column: str | None = None,
) -> ParsedFile:
    """Every row of the CSV file at `path`, checked; `ImportFileError` when the file as a
    whole cannot be read."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImportFileError(f"{path}: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise ImportFileError(
            f"{path}: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,}: split the file"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path}: not a UTF-8 CSV file (byte {exc.start} cannot be read)"
        ) from exc
    if "\x00" in text:
        raise ImportFileError(f"{path}: not a CSV file (it holds NUL bytes)")
    return parse_rows(
        text,
        name=str(path),
        now=now,
        default_consent_at=default_consent_at,
        signup_column=signup_column,
    )


def parse_rows(
    text: str,
    *,
    name: str = "the file",
    now: datetime,
    default_consent_at: datetime | None = None,
    signup_column: str | None = None,
) -> ParsedFile:
    """Check every row of CSV `text` (see the module docstring for the columns)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise ImportFileError(f"{name}: empty: a header row naming the columns is needed") from None
    except csv.Error as exc:
        raise ImportFileError(f"{name}: not a CSV file: {exc}") from exc
    index = _check_header(header, name=name, signup_column=signup_column)
    if "consent_at" not in index and default_consent_at is None:
        raise ImportFileError(
            f"{name}: no consent_at column: give each row's consent time, or --consent-at"
        )
    parsed = ParsedFile()
    first_row_of: dict[str, int] = {}
    number = 1
    try:
        for cells in reader:
            number += 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line is no row
            result = _parse_row(
                number,
                cells,
                index,
                width=len(header),
                now=now,
                default_consent_at=default_consent_at,
                signup_column=signup_column,
            )
            if isinstance(result, Refusal):
                parsed.refusals.append(result)
            elif result.email in first_row_of:
                parsed.refusals.append(
                    Refusal(
                        number,
                        "email",
                        "duplicate address",
                        f"the address is on row {first_row_of[result.email]} already",
                    )
                )
            else:
                first_row_of[result.email] = number
                parsed.rows.append(result)
    except csv.Error as exc:
        raise ImportFileError(f"{name}: row {number}: not valid CSV: {exc}") from exc
    return parsed


def _check_header(header: list[str], *, name: str, signup_column: str | None) -> dict[str, int]:
    """Each column's position; `ImportFileError` naming a missing, repeated or unknown one."""
    index: dict[str, int] = {}
    for position, column in enumerate(header):
        if column in index:
            raise ImportFileError(f"{name}: the column {column!r} appears twice in the header")
        index[column] = position
    if "email" not in index:
        raise ImportFileError(f"{name}: no email column in the header ({', '.join(header)})")
    if signup_column is not None and signup_column not in index:
        raise ImportFileError(f"{name}: no {signup_column!r} column for --skip-elapsed")
    for column in header:
        if column in COLUMNS or column == signup_column:
            continue
        if column.startswith(ATTRIBUTE_PREFIX):
            key = column.removeprefix(ATTRIBUTE_PREFIX)
            try:
                check_changes({key: None})
            except ValueError as exc:
                raise ImportFileError(f"{name}: column {column!r}: {exc}") from exc
            continue
        raise ImportFileError(
            f"{name}: unknown column {column!r}: the columns are {', '.join(COLUMNS)}, "
            f"{ATTRIBUTE_PREFIX}KEY for attributes, and the --skip-elapsed column"
        )
    return index


def _parse_row(
    number: int,
    cells: list[str],
    index: dict[str, int],
    *,
    width: int,
    now: datetime,
    default_consent_at: datetime | None,
    signup_column: str | None,
) -> ImportRow | Refusal:
    """One row checked: the row, or the refusal naming its first fault."""
    if len(cells) > width:
        return Refusal(number, None, "malformed row", f"{len(cells)} cells for {width} columns")

    def cell(column: str) -> str:
        position = index.get(column)
        return cells[position].strip() if position is not None and position < len(cells) else ""

    try:
        request = SignupRequest(
            email=cell("email"),
            first_name=cell("first_name") or None,
            timezone=cell("timezone") or None,
            source=cell("source") or None,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        column = str(error["loc"][0]) if error["loc"] else "email"
        detail = (
            "the cell is empty" if not cell(column) else error["msg"].removeprefix("Value error, ")
        )
        return Refusal(number, column, f"invalid {column}", detail)
    attributes: dict[str, Any] = {}
    for column in index:
        if column.startswith(ATTRIBUTE_PREFIX) and cell(column):
            key = column.removeprefix(ATTRIBUTE_PREFIX)
            try:
                check_changes({key: cell(column)})
            except ValueError as exc:
                return Refusal(number, column, f"invalid {column}", str(exc))
            attributes[key] = cell(column)
    consent_at = default_consent_at
    if cell("consent_at"):
        consent_at = parse_time(cell("consent_at"))
        if consent_at is None or consent_at > now:
            return Refusal(number, "consent_at", "invalid consent_at", _time_fault(consent_at))
    if consent_at is None:
        return Refusal(number, "consent_at", "missing consent_at", "the cell is empty")
    signed_up_at = None
    if signup_column is not None:
        signed_up_at = parse_time(cell(signup_column))
        if signed_up_at is None or signed_up_at > now:
            reason = f"invalid {signup_column}"
            fault = _time_fault(signed_up_at) if cell(signup_column) else "the cell is empty"
            return Refusal(number, signup_column, reason, fault)
    return ImportRow(
        row=number,
        email=request.email,
        first_name=request.first_name,
        timezone=request.timezone,
        source=request.source or DEFAULT_SOURCE,
        attributes=attributes,
        consent_at=consent_at,
        signed_up_at=signed_up_at,
    )


def _time_fault(value: datetime | None) -> str:
    if value is None:
        return "not an ISO 8601 date and time (such as 2026-03-01T09:30:00Z)"
    return "in the future"


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 date and time as an aware UTC datetime (no offset: UTC; a date alone:
    its midnight UTC), or None when `text` is not one."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True)
class Start:
    """Where an imported enrolment starts: its first step and that step's due time (both
    None when every step has already elapsed), and the steps it passes before it, in file
    order, each with the time it counts as passed (`--skip-elapsed`: when it was due;
    `--start-at`: the import's time)."""

    step: Step | None
    due: datetime | None
    passed: tuple[tuple[Step, datetime], ...] = ()


def plan_start(
    sequence: Sequence,
    *,
    timezone: str | None,
    now: datetime,
    start_at: str | None = None,
    signed_up_at: datetime | None = None,
) -> Start:
    """Where an imported enrolment starts (`signed_up_at`: the --skip-elapsed rule of the
    module docstring; with every step elapsed, every step is passed and none is next).

    Without `signed_up_at` the start is step `start_at` (default: the first), due now,
    moved into its send window in the subscriber's zone, and the steps before it are passed.
    """
    zone = subscriber_zone(timezone, sequence)
    if signed_up_at is not None:
        after = signed_up_at
        passed: list[tuple[Step, datetime]] = []
        for step in sequence.steps:
            due = plan_due(after, step, sequence, zone)
            if due >= now:
                return Start(step, due, tuple(passed))
            passed.append((step, due))
            after = due  # as if this step had been sent on time
        return Start(None, None, tuple(passed))
    start = sequence.steps[0] if start_at is None else sequence.step(start_at)
    if start is None:
        raise ValueError(f"sequence {sequence.id} has no step {start_at!r}")
    before = sequence.steps[: sequence.steps.index(start)]
    due = fit_window(now, sequence.window_for(start), zone)
    return Start(start, due, tuple((step, now) for step in before))
