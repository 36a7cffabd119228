"""samples.yaml feeds validate and preview; validate runs the inbox checks: errors fail it,
warnings print."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drip.cli.main import app
from drip.errors import SequenceError
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.loader import sequence_files
from drip.sequences.samples import BUILTIN_SAMPLES, load_samples, read_samples
from tests.conftest import REPO

ADDRESS = "The Resume Studio, 100 Example Street, Springfield, USA"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sequences_dir: Path) -> CliRunner:
    for name in ("DRIP_ENV", "DRIP_DATABASE_URL", "DRIP_SENDGRID_API_KEY", "DRIP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIP_SEQUENCES_DIR", str(sequences_dir))
    monkeypatch.setenv("DRIP_STATE_DIR", str(tmp_path / ".drip"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


SAMPLES = """\
samples:
  - label: Ann
    first_name: Ann
  - label: divides by zero
    first_name: Zed
    attributes: {divisor: 0}
"""


def test_the_shipped_samples_cover_what_the_issue_asks(tmp_path: Path) -> None:
    samples = load_samples(REPO / "sequences")
    people = {s.label: s.contact for s in samples}
    assert people["no first name"].first_name is None
    assert len(people["a long name"].first_name or "") > 40
    assert not (people["a non-Latin name"].first_name or "a").isascii()
    assert people["Alex"].attributes
    # and the file is not read as a sequence
    assert REPO / "sequences" / "samples.yaml" not in sequence_files([REPO / "sequences"])


def test_without_a_samples_file_the_built_in_samples_are_used(sequences_dir: Path) -> None:
    assert not (sequences_dir / "samples.yaml").exists()
    assert load_samples(sequences_dir) == BUILTIN_SAMPLES


def test_validate_renders_every_step_for_every_sample_of_the_file(
    cli: CliRunner, sequences_dir: Path
) -> None:
    (sequences_dir / "samples.yaml").write_text(SAMPLES)
    result = cli.invoke(app, ["sequences", "validate"])
    assert result.exit_code == 1
    assert (
        "steps[0]: does not render for the sample contact 'divides by zero':"
        " quick/welcome.html: ZeroDivisionError" in result.output
    )


def test_a_broken_samples_file_is_named_with_its_line(cli: CliRunner, sequences_dir: Path) -> None:
    path = sequences_dir / "samples.yaml"
    path.write_text(SAMPLES.replace("first_name: Zed", "first_name: Zed\n    timezone: Mars/Base"))
    with pytest.raises(SequenceError) as raised:
        read_samples(path)
    [problem] = raised.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 6, "samples[1].timezone")
    result = cli.invoke(app, ["sequences", "validate"])
    assert result.exit_code == 1
    assert f"{path}:6: samples[1].timezone: 'Mars/Base' is not an IANA time zone" in result.output
    result = cli.invoke(app, ["sequences", "validate", str(path)])
    assert result.exit_code == 1
    path.write_text(SAMPLES.replace("label: Ann", "label: Zed").replace("divides by zero", "Zed"))
    with pytest.raises(SequenceError, match="label 'Zed' is used twice"):
        read_samples(path)


def test_preview_renders_for_a_sample_of_the_file(
    cli: CliRunner, sequences_dir: Path, tmp_path: Path
) -> None:
    (sequences_dir / "samples.yaml").write_text(SAMPLES.replace("{divisor: 0}", "{divisor: 4}"))
    out = tmp_path / "p"
    first = cli.invoke(app, ["sequences", "preview", "quick", "welcome", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "Hello Ann, number 100." in (out / "quick" / "01-welcome.html").read_text()
    chosen = cli.invoke(
        app,
        [
            "sequences",
            "preview",
            "quick",
            "welcome",
            "--sample",
            "divides by zero",
            "--out",
            str(out),
        ],
    )
    assert chosen.exit_code == 0, chosen.output
    assert "Hello Zed, number 25." in (out / "quick" / "01-welcome.html").read_text()
    unknown = cli.invoke(app, ["sequences", "preview", "quick", "--sample", "Nobody"])
    assert unknown.exit_code == 2
    assert "no sample 'Nobody'; known: Ann, divides by zero" in unknown.output


def test_an_inbox_error_fails_validate_with_file_line_and_field(
    cli: CliRunner, sequences_dir: Path
) -> None:
    template = sequences_dir / "templates" / "quick" / "third.html"
    template.write_text('<p>The third email.</p><img src="https://example.com/chart.png">')
    result = cli.invoke(app, ["sequences", "validate"])
    assert result.exit_code == 1
    line = (
        (sequences_dir / "quick.yaml")
        .read_text()
        .splitlines()
        .index("    template: quick/third.html")
    )
    assert (
        f"{sequences_dir / 'quick.yaml'}:{line + 1}: steps[2].template: error: image-alt:"
        " image 'https://example.com/chart.png' has no alt text" in result.output
    )
    assert "1 error(s) and 3 warning(s) in the emails" in result.output


def test_warnings_print_and_validate_passes(cli: CliRunner, sequences_dir: Path) -> None:
    result = cli.invoke(app, ["sequences", "validate"])
    assert result.exit_code == 0, result.output
    assert "steps[0]: warning: preheader: no preheader" in result.output
    assert "3 warning(s), no error" in result.output


def test_the_shipped_series_has_no_error_for_any_sample(tmp_path: Path) -> None:
    from drip.sequences.review import review_sequence

    folder = tmp_path / "sequences"
    shutil.copytree(REPO / "sequences", folder)
    catalog = SequenceCatalog.load(folder, postal_address=ADDRESS, require_https=True)
    samples = load_samples(folder)
    found = [
        placed
        for loaded in catalog
        for placed in review_sequence(loaded, catalog.renderer, samples, postal_address=ADDRESS)
    ]
    assert [p for p in found if p.is_error] == []
    # The warnings it has, by name: a long first name makes step 1's subject long.
    assert {(p.field, p.finding.check) for p in found} <= {("steps[0].subject", "subject-length")}
