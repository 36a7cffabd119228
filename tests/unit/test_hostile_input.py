"""Property-based: any sequence file or delay ends in a clean error from drip's tree."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drip.errors import DelayError, SequenceError
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.delays import parse_delay
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
