"""Property-based: any sequence file or delay ends in a clean error from drip's tree."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drip.errors import DelayError, SequenceError
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.delays import parse_delay
from drip.sequences.loader import MAX_SEQUENCE_FILE_BYTES, parse_sequence_file
from tests.conftest import TEST_SEQUENCES

KEYS = [
    "id",
    "name",
    "from",
    "reply_to",
    "timezone",
    "send_window",
    "layout",
    "steps",
    "delay",
    "subject",
    "template",
    "email",
    "days",
    "start",
    "end",
    "max_lateness",
    "download",
    "file",
    "double_opt_in",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2d",
            "0s",
            "08:00",
            "mon",
            "UTC",
            "a@example.com",
            "quick/second.html",
            "layouts/base.html",
            "{{ contact.x }}",
            "{{ ''.__class__ }}",
            "{% if %}",
        ]
    ),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)
    ),
    max_leaves=25,
)


@given(st.text(max_size=40))
def test_any_text_is_a_delay_or_a_delay_error(text: str) -> None:
    with contextlib.suppress(DelayError):
        assert parse_delay(text).total_seconds() >= 0


@given(st.one_of(st.integers(), st.floats(), st.none(), st.lists(st.text())))
def test_a_delay_that_is_not_text_is_a_delay_error(value: object) -> None:
    try:
        parse_delay(value)
    except DelayError:
        return
    raise AssertionError("accepted a non-string delay")


def _load(text: str) -> None:
    """Load `text` as a sequence file: it loads, or every problem names a place in it."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "templates").symlink_to(TEST_SEQUENCES / "templates")
        path = root / "s.yaml"
        path.write_text(text)
        problems: list[str] = []
        try:
            SequenceCatalog.load(root, postal_address="x", files=[path])
        except SequenceError as exc:
            problems = [str(p) for p in exc.problems] or ["(empty)"]
        assert all(p.startswith(str(path)) or "templates" in p for p in problems), problems


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_yaml_document_loads_or_is_refused_with_problems(document: object) -> None:
    _load(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_file_loads_or_is_refused_with_problems(text: str) -> None:
    _load(text)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["delay", "subject", "template", "id", "send_window", "max_lateness"]),
        SCALARS,
        max_size=6,
    )
)
def test_a_mutated_step_of_a_valid_file_is_refused_cleanly(changes: dict[str, object]) -> None:
    data = yaml.safe_load((TEST_SEQUENCES / "quick.yaml").read_text())
    data["steps"][1].update(changes)
    _load(yaml.safe_dump(data))


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    try:
        parse_sequence_file(path)
    except SequenceError as exc:
        return [str(p) for p in exc.problems]
    raise AssertionError("the file was accepted")


def test_nested_aliases_are_refused_at_once_with_their_line(tmp_path: Path) -> None:
    # Given the "billion laughs" in a step's delay: each level repeats the one before nine
    # times, and the delay's error message would spell out all 9**8 of them (6 s before the
    # fix, ten times longer for each further level)
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 8):
        before, name = chr(ord("a") + n - 1), chr(ord("a") + n)
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{before}"] * 9) + "]")
    text = (
        "id: bomb\nlaughs:\n"
        + "".join(f"  {level}\n" for level in levels)
        + "steps:\n  - {id: a, delay: *h, subject: s, template: t}\n"
    )
    # When it is loaded, then it is refused where the first anchor is, before any expansion
    started = time.monotonic()
    assert _problems(tmp_path, text) == [
        f"{tmp_path / 's.yaml'}:3: yaml: anchors and aliases (&name, *name, <<) are not allowed"
        " in a sequence file: write the value out"
    ]
    assert time.monotonic() - started < 1.0


def test_a_single_alias_is_refused_too(tmp_path: Path) -> None:
    text = (TEST_SEQUENCES / "quick.yaml").read_text()
    text = text.replace("timezone: UTC", "timezone: &zone UTC\nlabel: *zone")
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith(f"{tmp_path / 's.yaml'}:5: yaml: anchors and aliases")


def test_a_merge_key_is_refused(tmp_path: Path) -> None:
    text = "base: &base {delay: 1d}\nsteps:\n  - <<: *base\n    id: x\n"
    (problem,) = _problems(tmp_path, text)
    assert ":1: yaml: anchors and aliases" in problem


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    # Given a valid file padded with comments past the cap
    text = (TEST_SEQUENCES / "quick.yaml").read_text()
    padding = "# padding\n" * (MAX_SEQUENCE_FILE_BYTES // 10 + 1)
    assert len((text + padding).encode()) > MAX_SEQUENCE_FILE_BYTES
    assert _problems(tmp_path, text + padding) == [
        f"{tmp_path / 's.yaml'}: file: is larger than 256 KiB, the most a sequence file may be"
    ]
    # And the same file under the cap loads as far as its templates
    (tmp_path / "s.yaml").write_text(text + padding[: MAX_SEQUENCE_FILE_BYTES - len(text) - 10])
    assert parse_sequence_file(tmp_path / "s.yaml").sequence.id == "quick"


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    text = "id: deep\nsteps: " + "[" * 200_000
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith(f"{tmp_path / 's.yaml'}:2: yaml: nested deeper than 32 levels")
