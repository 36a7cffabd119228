"""Subject tests: how a file gives variants, which contact gets which (the same every time,
split evenly), and the verdict's test and its minimum."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from pydantic import ValidationError

from drip.render.variants import choose_variant, each_variant, step_for
from drip.reports.variants import MIN_SENT, Arm, judge, two_proportion_p
from drip.sequences.definition import MAX_SUBJECT_LENGTH, Step

BASE = {"id": "reminder", "delay": "1d", "template": "t.html"}


def step(subject: object) -> Step:
    return Step.model_validate({**BASE, "subject": subject})


def test_a_subject_test_keeps_each_variant_and_the_first_as_the_subject() -> None:
    s = step(
        {"variants": ["Did you open it?", "Your template is waiting, {{ contact.first_name }}"]}
    )
    assert s.subject == "Did you open it?"
    assert s.subject_variants == (
        "Did you open it?",
        "Your template is waiting, {{ contact.first_name }}",
    )
    assert s.variant(1).subject == s.subject_variants[1]
    assert [(letter, v.subject) for letter, v in each_variant(s)] == [
        ("A", s.subject_variants[0]),
        ("B", s.subject_variants[1]),
    ]
    assert each_variant(step("One")) == [("", step("One"))]


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ({"variants": ["only one"]}, "2 to 5"),
        ({"variants": [f"s{n}" for n in range(6)]}, "2 to 5"),
        ({"variants": ["ok", ""]}, "variant 2: the subject is empty"),
        ({"variants": ["ok", "x" * (MAX_SUBJECT_LENGTH + 1)]}, "variant 2: the subject is 121"),
        ({"variants": ["ok", "two\nlines"]}, "variant 2: the subject must be one line"),
        ({"variants": ["ok", 3]}, "variant 2 is not a string"),
        ({"variants": ["same", "same"]}, "must differ"),
        ({"variants": "ab"}, "2 to 5"),
        ({"choices": ["a", "b"]}, "subject is a string, or {variants"),
    ],
)
def test_bad_variants_are_refused_with_the_reason(subject: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{")):
        step(subject)


def test_subject_variants_cannot_be_given_directly() -> None:
    with pytest.raises(ValidationError, match=re.escape("subject: {variants")):
        Step.model_validate({**BASE, "subject": "x", "subject_variants": ["a", "b"]})


def test_the_variant_is_the_same_for_a_contact_and_step_every_time() -> None:
    assert choose_variant("pub-1", "reminder", 2) == choose_variant("pub-1", "reminder", 2)
    # Fixed values: the choice depends on no process (no salted hash(), no random) and no
    # release (a new hash would move every contact of a running test to another arm)
    assert [choose_variant(f"p{n}", "reminder", 2) for n in range(16)] == [
        1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0,
    ]  # fmt: skip
    assert [choose_variant(f"p{n}", "reminder", 3) for n in range(16)] == [
        0, 0, 2, 2, 1, 2, 1, 0, 1, 1, 2, 1, 1, 1, 0, 2,
    ]  # fmt: skip
    assert choose_variant("a", "reminder", 2) == 0
    assert choose_variant("c", "reminder", 2) == 1
    s = step({"variants": ["A subject", "B subject"]})
    chosen, number = step_for("c", s)
    assert number == 1
    assert chosen.subject == "B subject"
    assert step_for("c", step("One")) == (step("One"), None)


def test_variants_split_contacts_evenly_and_steps_independently() -> None:
    ids = [uuid.UUID(int=n).hex for n in range(4000)]
    counts = Counter(choose_variant(i, "reminder", 2) for i in ids)
    assert abs(counts[0] - counts[1]) < 250  # 4000 fair coin flips: sd 63
    same = sum(choose_variant(i, "reminder", 2) == choose_variant(i, "follow-up", 2) for i in ids)
    assert 1750 < same < 2250  # the second step's split does not copy the first's
    three = Counter(choose_variant(i, "reminder", 3) for i in ids)
    assert set(three) == {0, 1, 2}
    assert min(three.values()) > 1200


def test_the_two_proportion_z_test_matches_a_hand_computation() -> None:
    # 30/200 vs 15/200: pooled p = 0.1125, se = sqrt(.1125 * .8875 * 2 / 200) = 0.031598,
    # z = 0.075 / 0.031598 = 2.3736, two-sided p = 0.01762
    assert two_proportion_p(30, 200, 15, 200) == pytest.approx(0.01762, abs=5e-5)
    assert two_proportion_p(0, 200, 0, 200) == 1.0
    assert two_proportion_p(5, 0, 1, 10) == 1.0


def test_no_verdict_below_the_minimum_sent() -> None:
    arms = [Arm(0, "a", MIN_SENT - 1, 60, 0), Arm(1, "b", 500, 5, 0)]
    verdict = judge(arms, metric="click rate")
    assert verdict.text.startswith("not enough data yet")
    assert f"A has {MIN_SENT - 1}" in verdict.text
    assert verdict.p_value is None


def test_a_clear_difference_wins_and_a_small_one_does_not() -> None:
    clear = judge([Arm(0, "a", 200, 15, 0), Arm(1, "b", 200, 30, 0)], metric="click rate")
    assert clear.winner == 1
    assert clear.text.startswith("B wins")
    assert clear.p_value == pytest.approx(0.01762, abs=5e-5)
    close = judge([Arm(0, "a", 200, 15, 0), Arm(1, "b", 200, 18, 0)], metric="click rate")
    assert close.winner is None
    assert close.text.startswith("no clear winner yet")
    by_conversions = judge(
        [Arm(0, "a", 200, 0, 30), Arm(1, "b", 200, 0, 15)], metric="conversion rate"
    )
    assert by_conversions.winner == 0


def test_more_than_two_variants_correct_for_the_comparisons() -> None:
    arms = [Arm(0, "a", 200, 15, 0), Arm(1, "b", 200, 30, 0), Arm(2, "c", 200, 28, 0)]
    verdict = judge(arms, metric="click rate")
    # B against C is not significant: no winner, whatever B did against A
    assert verdict.winner is None
    assert verdict.p_value == pytest.approx(1.0)


def test_delay_is_kept_on_variant_steps() -> None:
    s = step({"variants": ["a", "b"]})
    assert s.variant(1).delay == timedelta(days=1)
