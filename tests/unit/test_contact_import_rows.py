"""An import file read without services: the header, each row's checks, where each
imported enrolment starts (due times worked out by hand in the comments), and the command's
answer to a file it cannot use."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from drip.cli import progress_bar as progress_bar_module
from drip.cli.main import app
from drip.contacts import imports
from drip.contacts.imports import (
    DEFAULT_SOURCE,
    ImportFileError,
    Start,
    parse_rows,
    parse_time,
    plan_start,
    read_import_file,
)
from drip.sequences.definition import Sequence

NOW = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)  # Wednesday, 10:00 in New York (EDT, UTC-4)
CONSENT = "2025-01-02T03:04:05Z"


def paced() -> Sequence:
    """Four steps, 0s, 2d, 3d and 7d apart, sent on weekdays 09:00-17:00 New York time."""
    return Sequence.model_validate(
        {
            "id": "paced",
            "name": "Paced",
            "from": {"email": "a@example.com"},
            "layout": "l.html",
            "timezone": "America/New_York",
            "send_window": {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "09:00",
                "end": "17:00",
            },
            "steps": [
                {"id": step, "delay": delay, "subject": "x", "template": "t.html"}
                for step, delay in (("a", "0s"), ("b", "2d"), ("c", "3d"), ("d", "7d"))
            ],
        }
    )


def parse(text: str, **options: object) -> imports.ParsedFile:
    return parse_rows(text, now=NOW, **options)  # type: ignore[arg-type]


# -- the header -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("first_name,consent_at", "no email column"),
        ("email,frist_name,consent_at", "unknown column 'frist_name'"),
        ("email,email,consent_at", "appears twice"),
        ("email,attr.Target-Role,consent_at", "column 'attr.Target-Role'"),
        ("email,first_name", "no consent_at column"),
    ],
)
def test_a_header_the_import_cannot_use_refuses_the_file(header: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        parse(header + "\n")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        parse("")


def test_the_signup_column_must_be_in_the_header() -> None:
    with pytest.raises(ImportFileError, match="'signed_up' column for --skip-elapsed"):
        parse("email,consent_at\n", signup_column="signed_up")


# -- each row ---------------------------------------------------------------------------------
def test_every_refusal_names_its_row_column_and_reason() -> None:
    text = "\n".join(
        [
            "email,first_name,timezone,source,consent_at,attr.target_role",
            f"ada@example.com,Ada,Europe/London,webinar,{CONSENT},CFO",  # row 2: fine
            f"not-an-address,Bob,,,{CONSENT},",  # 3
            f"cy@example.com,R2D2,,,{CONSENT},",  # 4: digits in a name
            f"di@example.com,Di,Mars/Olympus,,{CONSENT},",  # 5
            "ed@example.com,Ed,,,,",  # 6: no consent time
            "fay@example.com,Fay,,,2030-01-01,",  # 7: consent in the future
            "gus@example.com,Gus,,,last tuesday,",  # 8
            f"hal@example.com,Hal,,,{CONSENT},{'x' * 1001}",  # 9: attribute too long
            f"ADA@Example.com,Ada,,,{CONSENT},",  # 10: row 2's address again
            "",  # 11: a blank line is no row
            f"ivy@example.com,Ivy,,,{CONSENT},,extra",  # 12: one cell too many
            f",Nobody,,,{CONSENT},",  # 13
        ]
    )
    parsed = parse(text)
    assert [r.email for r in parsed.rows] == ["ada@example.com"]
    got = [(r.row, r.column, r.reason) for r in parsed.refusals]
    assert got == [
        (3, "email", "invalid email"),
        (4, "first_name", "invalid first_name"),
        (5, "timezone", "invalid timezone"),
        (6, "consent_at", "missing consent_at"),
        (7, "consent_at", "invalid consent_at"),
        (8, "consent_at", "invalid consent_at"),
        (9, "attr.target_role", "invalid attr.target_role"),
        (10, "email", "duplicate address"),
        (12, None, "malformed row"),
        (13, "email", "invalid email"),
    ]
    details = {r.row: r.detail for r in parsed.refusals}
    assert details[7] == "in the future"
    assert "ISO 8601" in details[8]
    assert details[10] == "the address is on row 2 already"
    assert details[13] == "the cell is empty"
    assert parsed.total == 11


def test_a_valid_row_is_normalised_as_a_signup_is() -> None:
    text = (
        "email,first_name,timezone,consent_at,attr.target_role,attr.years\n"
        " Ada@Example.COM ,Ada,Europe/London,2025-01-02 03:04,CFO,\n"
    )
    (row,) = parse(text).rows
    assert row.email == "ada@example.com"
    assert (row.first_name, row.timezone) == ("Ada", "Europe/London")
    assert row.source == DEFAULT_SOURCE
    assert row.attributes == {"target_role": "CFO"}  # an empty cell sets nothing
    assert row.consent_at == datetime(2025, 1, 2, 3, 4, tzinfo=UTC)  # no offset: UTC


def test_the_default_consent_time_fills_empty_cells_only() -> None:
    default = datetime(2024, 5, 1, tzinfo=UTC)
    text = f"email,consent_at\nada@example.com,\nbob@example.com,{CONSENT}\n"
    ada, bob = parse(text, default_consent_at=default).rows
    assert ada.consent_at == default
    assert bob.consent_at == parse_time(CONSENT)


def test_a_signup_time_is_read_from_the_named_column() -> None:
    text = "email,consent_at,joined\nada@example.com,2025-01-01,2026-06-01T10:00:00-04:00\n"
    text += "bob@example.com,2025-01-01,\n"
    parsed = parse(text, signup_column="joined")
    assert parsed.rows[0].signed_up_at == datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
    assert [(r.row, r.column, r.detail) for r in parsed.refusals] == [
        (3, "joined", "the cell is empty")
    ]


def test_parse_time_reads_offsets_dates_and_refuses_words() -> None:
    assert parse_time("2026-03-01T09:30:00+01:00") == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert parse_time("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_time("yesterday") is None


# -- where an imported enrolment starts --------------------------------------------------------
def test_by_default_step_one_is_due_now_when_the_window_is_open() -> None:
    # Wednesday 10:00 New York is inside the window: due at once, nothing passed.
    start = plan_start(paced(), timezone=None, now=NOW)
    assert (start.step.id, start.due, start.passed) == ("a", NOW, ())  # type: ignore[union-attr]


def test_step_one_due_on_a_saturday_waits_for_monday_morning() -> None:
    saturday = datetime(2026, 6, 13, 12, 0, tzinfo=UTC)  # 08:00 EDT, Saturday
    # The window opens Monday 15 June at 09:00 EDT = 13:00 UTC.
    start = plan_start(paced(), timezone=None, now=saturday)
    assert (start.step.id, start.due) == ("a", datetime(2026, 6, 15, 13, 0, tzinfo=UTC))  # type: ignore[union-attr]


def passed(start: Start) -> list[tuple[str, datetime]]:
    return [(step.id, at) for step, at in start.passed]


def test_start_at_is_due_now_whatever_its_delay_and_passes_the_steps_before() -> None:
    # Step c has a 3-day delay; an import starting there sends it now (in the window).
    start = plan_start(paced(), timezone=None, now=NOW, start_at="c")
    assert (start.step.id, start.due) == ("c", NOW)  # type: ignore[union-attr]
    # a and b are passed at the import's time, in file order: recorded, never sent.
    assert passed(start) == [("a", NOW), ("b", NOW)]
    # In London it is 15:00 on Wednesday: inside 09:00-17:00 there too.
    assert plan_start(paced(), timezone="Europe/London", now=NOW, start_at="c").due == NOW
    # In Tokyo it is 23:00: the window opens Thursday 09:00 JST = Thursday 00:00 UTC.
    tokyo = plan_start(paced(), timezone="Asia/Tokyo", now=NOW, start_at="c")
    assert tokyo.due == datetime(2026, 6, 11, 0, 0, tzinfo=UTC)
    assert passed(tokyo) == [("a", NOW), ("b", NOW)]


def test_skip_elapsed_plans_the_first_step_still_ahead_at_its_due_time() -> None:
    signed_up = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # Monday 10:00 EDT
    # a: +0s  -> Mon 1 June 10:00 EDT, open            = 1 June 14:00 UTC (past)
    # b: +2d  -> Wed 3 June 10:00 EDT, open            = 3 June 14:00 UTC (past)
    # c: +3d  -> Sat 6 June: closed -> Mon 8 June 09:00 = 8 June 13:00 UTC (past on the 10th)
    # d: +7d  -> Mon 15 June 09:00 EDT, the opening    = 15 June 13:00 UTC (ahead)
    start = plan_start(paced(), timezone=None, now=NOW, signed_up_at=signed_up)
    assert (start.step.id, start.due) == ("d", datetime(2026, 6, 15, 13, 0, tzinfo=UTC))  # type: ignore[union-attr]
    # The elapsed steps are passed, each at the time it was due.
    assert passed(start) == [
        ("a", datetime(2026, 6, 1, 14, 0, tzinfo=UTC)),
        ("b", datetime(2026, 6, 3, 14, 0, tzinfo=UTC)),
        ("c", datetime(2026, 6, 8, 13, 0, tzinfo=UTC)),
    ]
    # On Friday 5 June, c (Monday 8 June 13:00 UTC) is still ahead.
    friday = datetime(2026, 6, 5, 12, 0, tzinfo=UTC)
    start = plan_start(paced(), timezone=None, now=friday, signed_up_at=signed_up)
    assert (start.step.id, start.due) == ("c", datetime(2026, 6, 8, 13, 0, tzinfo=UTC))  # type: ignore[union-attr]
    assert [step for step, _ in passed(start)] == ["a", "b"]


def test_skip_elapsed_with_every_step_past_plans_nothing_and_passes_them_all() -> None:
    signed_up = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
    later = datetime(2026, 6, 20, tzinfo=UTC)  # d was due on 15 June
    start = plan_start(paced(), timezone=None, now=later, signed_up_at=signed_up)
    assert (start.step, start.due) == (None, None)
    assert [step for step, _ in passed(start)] == ["a", "b", "c", "d"]


# -- a file the command cannot use: exit 2, before any database is opened ----------------------
def run_import(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["contacts", "import", str(path), "--sequence", "quick", *args]
    )
    return result.exit_code, result.output


def test_a_binary_file_is_not_csv(tmp_path: Path) -> None:
    path = tmp_path / "list.xlsx"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00binary")
    code, output = run_import(path)
    assert code == 2
    assert "not a UTF-8 CSV file" in output


def test_a_file_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.csv"
    path.write_text("email,consent_at\n" + f"a@example.com,{CONSENT}\n" * 10)
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 100)
    code, output = run_import(path)
    assert code == 2
    assert "over the limit of 100" in output


def test_a_file_without_an_email_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("name,consent_at\nAda,2025-01-01\n")
    code, output = run_import(path)
    assert code == 2
    assert "no email column" in output


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    code, output = run_import(tmp_path / "nowhere.csv")
    assert code == 2
    assert "nowhere.csv" in output


def test_start_at_and_skip_elapsed_exclude_each_other(tmp_path: Path) -> None:
    code, output = run_import(tmp_path / "x.csv", "--start-at", "b", "--skip-elapsed", "joined")
    assert code == 2
    assert "cannot be used together" in output


def test_read_import_file_refuses_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_text("email,consent_at\n\x00\n")
    with pytest.raises(ImportFileError, match="NUL"):
        read_import_file(path, now=NOW)


# -- the progress bar --------------------------------------------------------------------------
class Terminal(Console):
    """A console that takes itself for a terminal, writing into a buffer."""

    def writes_to_terminal(self) -> bool:
        return True


def test_the_progress_bar_shows_on_a_terminal_and_not_for_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(progress_bar_module, "errors", Terminal(file=screen, force_terminal=True))
    with progress_bar_module.progress_bar(label="importing", quiet=True) as show:
        show(1000, 2000)
    assert screen.getvalue() == ""
    with progress_bar_module.progress_bar(label="importing", quiet=False) as show:
        show(1000, 2000)
    assert "importing" in screen.getvalue()
