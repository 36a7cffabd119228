"""The marketer's commands, run as a marketer runs them: validate, simulate, preview, test-send."""

from __future__ import annotations

import email
import json
import shutil
from email import policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drip.cli.main import app
from tests.conftest import REPO, require_tools


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sequences_dir: Path) -> CliRunner:
    for name in (
        "DRIP_ENV",
        "DRIP_DATABASE_URL",
        "DRIP_REDIS_URL",
        "DRIP_SENDGRID_API_KEY",
        "DRIP_TRANSPORT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIP_SEQUENCES_DIR", str(sequences_dir))
    monkeypatch.setenv("DRIP_STATE_DIR", str(tmp_path / ".drip"))
    monkeypatch.setenv("DRIP_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_validate_passes_the_shipped_series(cli: CliRunner) -> None:
    result = cli.invoke(app, ["sequences", "validate", "--production", str(REPO / "sequences")])
    assert result.exit_code == 0, result.output
    assert "executive-resume  11 steps" in result.output


@pytest.mark.parametrize(
    ("old", "new", "refusal"),
    [
        (
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
            "Unsubscribe",
            "layout: layout 'layouts/base.html' must show {{ unsubscribe_url }}",
        ),
        (
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
            "Unsubscribe at {{ unsubscribe_url }}",
            "steps[0]: rendered with layout 'layouts/base.html', its HTML has no working"
            ' unsubscribe link (an <a href="{{ unsubscribe_url }}"> in the layout)',
        ),
        (
            "{{ postal_address }}",
            "",
            "steps[9]: rendered with layout 'layouts/base.html',"
            " its HTML does not show the postal address ({{ postal_address }})",
        ),
    ],
)
def test_validate_refuses_the_shipped_series_when_its_layout_loses_its_footer(
    cli: CliRunner, tmp_path: Path, old: str, new: str, refusal: str
) -> None:
    # Given the shipped series with its layout's unsubscribe link or postal address broken
    copy = tmp_path / "shipped"
    shutil.copytree(REPO / "sequences", copy)
    layout = copy / "templates" / "layouts" / "base.html"
    assert old in layout.read_text()
    layout.write_text(layout.read_text().replace(old, new))
    # When it is validated, then it is refused, naming the sequence file and what is missing
    result = cli.invoke(app, ["sequences", "validate", str(copy)])
    assert result.exit_code == 1, result.output
    assert f"{copy / 'executive-resume.yaml'}:" in result.output
    assert refusal in result.output


def test_validate_in_production_mode_refuses_a_plain_http_link(
    cli: CliRunner, sequences_dir: Path
) -> None:
    (sequences_dir / "templates" / "quick" / "third.html").write_text(
        '<a href="http://example.com/x">x</a>'
    )
    assert cli.invoke(app, ["sequences", "validate"]).exit_code == 0
    result = cli.invoke(app, ["sequences", "validate", "--production"])
    assert result.exit_code == 1
    assert "steps[2].template: link 'http://example.com/x' is not absolute https" in result.output


def test_validate_exits_1_with_file_line_field_lines(cli: CliRunner, sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    path.write_text(path.read_text().replace('subject: "Third email"', 'subject: ""'))
    line = path.read_text().splitlines().index('    subject: ""') + 1
    result = cli.invoke(app, ["sequences", "validate"])
    assert result.exit_code == 1
    assert (
        f"{path}:{line}: steps[2].subject: String should have at least 1 character" in result.output
    )


def test_simulate_prints_utc_and_local_times_with_windows_and_dst(cli: CliRunner) -> None:
    result = cli.invoke(
        app,
        [
            "sequences",
            "simulate",
            "executive-resume",
            "--json",
            "--signup-at",
            "2026-10-30T16:30:00-04:00",
        ],
        env={"DRIP_SEQUENCES_DIR": str(REPO / "sequences")},
    )
    assert result.exit_code == 0, result.output
    sends = json.loads(result.output)["sends"]
    assert len(sends) == 11
    assert (
        sends[0]["local"] == "2026-10-30T16:30:00-04:00"
    )  # the template: at once, a Friday evening
    assert (
        sends[1]["local"] == "2026-11-02T08:00:00-05:00"
    )  # two days later is Sunday: Monday 08:00, after DST
    assert sends[0]["subject"] == "Your executive resume template is here, Alex"


def _simulated(cli: CliRunner, *options: str) -> list[dict[str, str]]:
    result = cli.invoke(
        app,
        [
            "sequences",
            "simulate",
            "executive-resume",
            "--json",
            "--signup-at",
            "2026-12-01T09:00:00-05:00",
            *options,
        ],
        env={"DRIP_SEQUENCES_DIR": str(REPO / "sequences")},
    )
    assert result.exit_code == 0, result.output
    sends: list[dict[str, str]] = json.loads(result.output)["sends"]
    return sends


def test_simulate_shows_which_variant_of_step_2_goes(cli: CliRunner) -> None:
    # Without a download, step 2 is the reminder with the link, at the time step 2 was due
    sends = {s["step"]: s for s in _simulated(cli)}
    assert sends["executive-summary"]["outcome"] == "skipped"
    assert sends["executive-summary-reminder"]["outcome"] == "sent"
    assert sends["executive-summary-reminder"]["local"] == "2026-12-03T09:00:00-05:00"
    assert [s["outcome"] for s in _simulated(cli)].count("sent") == 10
    # With the template downloaded an hour after signup, the plain step 2 goes instead
    fetched = {s["step"]: s["outcome"] for s in _simulated(cli, "--downloaded", "1h")}
    assert fetched["executive-summary"] == "sent"
    assert fetched["executive-summary-reminder"] == "skipped"


def test_simulate_ends_the_series_at_a_goal(cli: CliRunner) -> None:
    # A purchase on day 5 (Sunday 6 December): step 3, due Monday the 7th, never goes
    sends = _simulated(cli, "--downloaded", "1h", "--event", "purchased@5d")
    assert [s["outcome"] for s in sends] == ["sent", "sent", "skipped", "ends"]
    assert sends[-1]["note"] == "goal reached: purchased"
    assert sends[-1]["step"] == "achievements-with-numbers"


def test_simulate_refuses_a_malformed_event(cli: CliRunner) -> None:
    result = cli.invoke(
        app,
        ["sequences", "simulate", "executive-resume", "--event", "purchased"],
        env={"DRIP_SEQUENCES_DIR": str(REPO / "sequences")},
    )
    assert result.exit_code == 2
    assert "NAME@OFFSET" in result.output


def test_preview_writes_html_and_text_for_each_step(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(
        app,
        [
            "sequences",
            "preview",
            "quick",
            "--out",
            str(tmp_path / "p"),
            "--contact",
            '{"first_name": "Ann"}',
        ],
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "p" / "quick").iterdir())
    assert written == [
        "01-welcome.html",
        "01-welcome.txt",
        "02-second.html",
        "02-second.txt",
        "03-third.html",
        "03-third.txt",
    ]
    assert "Hello Ann" in (tmp_path / "p" / "quick" / "01-welcome.html").read_text()


@pytest.mark.browser
def test_preview_png_is_a_screenshot_by_headless_chromium(cli: CliRunner, tmp_path: Path) -> None:
    require_tools("chromium", why="Debian's chromium package")
    result = cli.invoke(
        app,
        [
            "sequences",
            "preview",
            "executive-resume",
            "template-delivery",
            "--png",
            "--out",
            str(tmp_path / "p"),
        ],
        env={"DRIP_SEQUENCES_DIR": str(REPO / "sequences")},
    )
    assert result.exit_code == 0, result.output
    png = tmp_path / "p" / "executive-resume" / "01-template-delivery.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000  # a rendered page, not an empty canvas


def test_test_send_prefixes_the_subject_and_touches_no_subscriber_state(
    cli: CliRunner, tmp_path: Path
) -> None:
    result = cli.invoke(app, ["sequences", "test-send", "quick", "--to", "Me@Example.com"])
    assert result.exit_code == 0, result.output
    messages = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted((tmp_path / "outbox").glob("*.eml"))
    ]
    assert sorted(m["Subject"] for m in messages) == [
        "[TEST] Second email",
        "[TEST] Third email",
        "[TEST] Welcome, Alex",
    ]
    assert {m["To"] for m in messages} == {"Alex <me@example.com>"}
    assert not (tmp_path / "drip.db").exists()  # no database was touched
