"""The marketer's commands with a subject test and tracked links: simulate lists each
variant's subject, preview writes one email per variant, validate names a bad variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drip.cli.main import app

VARIANTS = 'subject: {variants: ["Second email", "Still here, {{ contact.email }}?"]}'


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sequences_dir: Path) -> CliRunner:
    for name in ("DRIP_ENV", "DRIP_DATABASE_URL", "DRIP_REDIS_URL", "DRIP_SENDGRID_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIP_SEQUENCES_DIR", str(sequences_dir))
    monkeypatch.setenv("DRIP_STATE_DIR", str(tmp_path / ".drip"))
    monkeypatch.setenv("DRIP_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.chdir(tmp_path)
    quick = sequences_dir / "quick.yaml"
    text = quick.read_text().replace('subject: "Second email"', VARIANTS)
    quick.write_text(
        text.replace(
            "steps:\n",
            "track_clicks: true\nutm: {source: drip, content: '{{ step.id }}'}\nsteps:\n",
        )
    )
    return CliRunner()


def test_simulate_lists_each_variant(cli: CliRunner) -> None:
    result = cli.invoke(
        app,
        ["sequences", "simulate", "quick", "--signup-at", "2026-11-30T09:00:00+00:00", "--json"],
    )
    assert result.exit_code == 0, result.output
    sends = json.loads(result.output)["sends"]
    assert sends[0]["subject_variants"] == []
    assert sends[1]["subject_variants"] == [
        "A: Second email",
        "B: Still here, alex@example.com?",
    ]
    table = cli.invoke(app, ["sequences", "simulate", "quick"])
    assert "A: Second email" in table.output
    assert "B: Still here" in table.output


def test_preview_writes_one_email_per_variant(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli.invoke(app, ["sequences", "preview", "quick", "second", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (out / "quick").iterdir())
    assert written == ["02-second-A.html", "02-second-A.txt", "02-second-B.html", "02-second-B.txt"]
    assert (out / "quick" / "02-second-A.txt").read_text().startswith("Subject: Second email\n")
    assert (out / "quick" / "02-second-B.txt").read_text().startswith("Subject: Still here, ")


def test_validate_names_a_bad_variant_with_its_file_and_line(
    cli: CliRunner, sequences_dir: Path
) -> None:
    quick = sequences_dir / "quick.yaml"
    quick.write_text(quick.read_text().replace(VARIANTS, 'subject: {variants: ["Only one"]}'))
    result = cli.invoke(app, ["sequences", "validate", str(sequences_dir)])
    assert result.exit_code == 1
    assert "quick.yaml:" in result.output
    assert "give 2 to 5 subjects" in result.output


def test_validate_names_a_bad_utm(cli: CliRunner, sequences_dir: Path) -> None:
    quick = sequences_dir / "quick.yaml"
    quick.write_text(quick.read_text().replace("utm: {source: drip,", "utm: {sauce: drip,"))
    result = cli.invoke(app, ["sequences", "validate", str(sequences_dir)])
    assert result.exit_code == 1
    assert "utm.sauce" in result.output
