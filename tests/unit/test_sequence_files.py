"""Bad sequence files are reported with file, line and field; good ones load."""

from pathlib import Path

import pytest

from drip.errors import SequenceError
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.files import OfferFileError, resolve_offer_file
from tests.conftest import REPO


def load(sequences_dir: Path) -> SequenceCatalog:
    return SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")


def problems_of(sequences_dir: Path) -> list[str]:
    with pytest.raises(SequenceError) as caught:
        load(sequences_dir)
    return [str(p) for p in caught.value.problems]


def edit(path: Path, old: str, new: str) -> int:
    """Replace `old` by `new` in the file; return the 1-based line of the edit."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


def test_the_sample_series_and_the_test_sequence_load(sequences_dir: Path) -> None:
    assert [s.definition.id for s in load(sequences_dir)] == ["quick"]
    sample = load(REPO / "sequences").get("executive-resume")
    assert len(sample.definition.steps) == 11  # ten emails, step 2 in two variants
    assert len(sample.version) == 12


def test_a_bad_delay_names_file_line_and_field(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    line = edit(path, "delay: 1s", "delay: 2 days")
    assert problems_of(sequences_dir) == [
        f"{path}:{line}: steps[1].delay: '2 days' is not a delay:"
        " use whole numbers with s, m, h, d or w,"
        " such as '45m' or '1d12h'"
    ]


def test_a_yaml_syntax_error_names_its_line(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    line = edit(path, "  - id: second", "  - id: [second")
    (problem,) = problems_of(sequences_dir)
    assert problem.startswith(f"{path}:{line}: yaml:") or problem.startswith(
        f"{path}:{line + 1}: yaml:"
    )


def test_a_misspelt_field_is_refused_where_it_is(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    line = edit(path, '    subject: "Second email"', '    subjcet: "Second email"')
    assert (
        f"{path}:{line}: steps[1].subjcet: is not a field of a sequence file (check the spelling)"
        in (problems_of(sequences_dir))
    )


def test_duplicate_step_ids_are_refused(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    line = edit(path, "  - id: third", "  - id: second")
    assert f"{path}:{line}: steps[2].id: step id 'second' is used twice" in problems_of(
        sequences_dir
    )


def test_a_missing_template_is_refused_at_load_not_at_send_time(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    line = edit(path, "template: quick/third.html", "template: quick/thrid.html")
    (problem,) = problems_of(sequences_dir)
    assert problem.startswith(
        f"{path}:{line}: steps[2].template: template 'quick/thrid.html' not found"
    )


def test_a_layout_without_the_unsubscribe_link_is_refused(sequences_dir: Path) -> None:
    layout = sequences_dir / "templates" / "layouts" / "base.html"
    edit(layout, '<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "")
    (problem,) = problems_of(sequences_dir)
    assert "layout: layout 'layouts/base.html' must show {{ unsubscribe_url }}" in problem


def test_an_undefined_variable_is_reported_by_name(sequences_dir: Path) -> None:
    template = sequences_dir / "templates" / "quick" / "second.html"
    template.write_text("<p>{{ contact.frist_name }}</p>")
    (problem,) = problems_of(sequences_dir)
    assert "steps[1]: does not render" in problem
    assert "frist_name" in problem


def test_a_template_reaching_outside_the_sandbox_is_refused(sequences_dir: Path) -> None:
    template = sequences_dir / "templates" / "quick" / "third.html"
    template.write_text("<p>{% if false %}{{ ''.__class__.__mro__ }}{% endif %}</p>")
    problems = problems_of(sequences_dir)
    assert (
        f"{template}:1: template: '__class__' reaches outside the sandbox and is refused"
        in problems
    )


def test_an_unknown_time_zone_is_refused(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    line = edit(path, "timezone: UTC", "timezone: Mars/Olympus")
    assert problems_of(sequences_dir) == [
        f"{path}:{line}: timezone: 'Mars/Olympus'"
        " is not an IANA time zone such as 'America/New_York'"
    ]


def test_every_problem_of_every_file_is_reported_at_once(sequences_dir: Path) -> None:
    (sequences_dir / "other.yaml").write_text("id: other\nname: Other\n")
    edit(sequences_dir / "quick.yaml", "delay: 1s", "delay: x")
    problems = problems_of(sequences_dir)
    assert any("quick.yaml" in p and "steps[1].delay" in p for p in problems)
    assert any("other.yaml:1: from: Field required" in p for p in problems)


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("../../../../etc/passwd", "contains '..'"),
        ("files/../../../../etc/passwd", "contains '..'"),
        ("/etc/passwd", "is an absolute path"),
        ("C:/Windows/win.ini", "is an absolute path"),
        ("quick.yaml", "is not under files/"),
        ("files\\\\guide.txt", "is not a file name"),
        ("files/missing.pdf", "is not a file under"),
    ],
)
def test_an_offered_file_outside_files_is_refused_with_file_line_and_field(
    sequences_dir: Path, written: str, why: str
) -> None:
    path = sequences_dir / "quick.yaml"
    line = edit(path, "download: {file: files/guide.txt", f'download: {{file: "{written}"')
    (problem,) = problems_of(sequences_dir)
    assert problem.startswith(f"{path}:{line}: download.file: ")
    assert why in problem


def test_an_offered_file_linked_out_of_files_is_refused(sequences_dir: Path) -> None:
    # Given files/guide.txt replaced by a symbolic link to a file outside the folder
    (sequences_dir / "files" / "guide.txt").unlink()
    (sequences_dir / "files" / "guide.txt").symlink_to("/etc/passwd")
    line = edit(sequences_dir / "quick.yaml", "download:", "download:")
    (problem,) = problems_of(sequences_dir)
    assert problem.startswith(f"{sequences_dir / 'quick.yaml'}:{line}: download.file: ")
    assert "leads outside" in problem


def test_resolve_offer_file_is_the_one_rule_for_loading_and_serving(sequences_dir: Path) -> None:
    assert (
        resolve_offer_file(sequences_dir, "files/guide.txt")
        == (sequences_dir / "files" / "guide.txt").resolve()
    )
    (sequences_dir / "files" / "outside").symlink_to(sequences_dir / "quick.yaml")
    for name in ("../quick.yaml", "/etc/passwd", "files/outside", "files", "files/", ""):
        with pytest.raises(OfferFileError):
            resolve_offer_file(sequences_dir, name)


def test_a_layout_that_shows_the_unsubscribe_url_without_linking_it_is_refused(
    sequences_dir: Path,
) -> None:
    # Given a layout that names unsubscribe_url, but as text, not as a link
    layout = sequences_dir / "templates" / "layouts" / "base.html"
    edit(
        layout,
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
        "Unsubscribe: {{ unsubscribe_url }}",
    )
    problems = problems_of(sequences_dir)
    # Then every step, the confirmation email too, is refused where the file names it
    path = sequences_dir / "quick.yaml"
    for where in ("steps[0]", "steps[1]", "steps[2]", "confirmation"):
        assert any(
            p.startswith(f"{path}:")
            and f": {where}: rendered with layout 'layouts/base.html'," in p
            and "its HTML has no working unsubscribe link" in p
            for p in problems
        ), (where, problems)


def test_a_link_to_the_unsubscribe_url_inside_a_comment_does_not_count(sequences_dir: Path) -> None:
    layout = sequences_dir / "templates" / "layouts" / "base.html"
    edit(
        layout,
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
        '<!-- <a href="{{ unsubscribe_url }}">x</a> -->',
    )
    assert any("no working unsubscribe link" in p for p in problems_of(sequences_dir))


def test_a_layout_without_the_postal_address_is_refused(sequences_dir: Path) -> None:
    layout = sequences_dir / "templates" / "layouts" / "base.html"
    edit(layout, "{{ postal_address }}", "")
    problems = problems_of(sequences_dir)
    assert len(problems) == 4  # three steps and the confirmation email
    assert all("its HTML does not show the postal address" in p for p in problems), problems
