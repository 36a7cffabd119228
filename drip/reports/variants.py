"""Subject tests: per variant, sent, unique human clicks and conversions, and a verdict.

The verdict is a two-sided two-proportion z-test (pooled standard error) on the click rate
(unique human clicks over sent) when the sequence tracks clicks, else on the conversion
rate. The variant with the highest rate is compared with each other variant; with more
than two variants the p-values are multiplied by the number of comparisons (Bonferroni).
The leader "wins" when every comparison has p < `ALPHA`. Below `MIN_SENT` sent for any
variant the verdict is "not enough data yet": a handful of clicks decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from drip.models import Delivery, DeliveryStatus, Enrollment, EnrollmentStatus, LinkClick
from drip.render.variants import variant_letter
from drip.sequences.catalog import SequenceCatalog

#: Sent per variant below which no verdict is given.
MIN_SENT = 100

#: The significance level of the verdict.
ALPHA = 0.05


@dataclass(frozen=True)
class Arm:
    """One variant of a subject test and what it did."""

    number: int
    subject: str | None
    sent: int
    clicks: int
    conversions: int

    @property
    def letter(self) -> str:
        """A, B, C... as reports name it."""
        return variant_letter(self.number)

    def rate(self, metric: str) -> float:
        """Clicks or conversions over sent (0 before anything was sent)."""
        hits = self.clicks if metric == "click rate" else self.conversions
        return hits / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class Verdict:
    """What the test says, in one sentence, and its numbers."""

    text: str
    metric: str
    p_value: float | None = None
    winner: int | None = None


@dataclass
class SubjectTest:
    """The subject test of one step."""

    sequence: str
    step: str
    metric: str
    arms: list[Arm] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """The verdict for these arms (see the module's rule)."""
        return judge(self.arms, metric=self.metric)

    def as_dict(self) -> dict[str, object]:
        """As `drip stats --variants --json` prints it."""
        verdict = self.verdict
        return {
            "sequence": self.sequence,
            "step": self.step,
            "metric": self.metric,
            "variants": [
                {
                    "variant": a.letter,
                    "subject": a.subject,
                    "sent": a.sent,
                    "human_clicks": a.clicks,
                    "conversions": a.conversions,
                    "rate": round(a.rate(self.metric), 4),
                }
                for a in self.arms
            ],
            "verdict": verdict.text,
            "p_value": None if verdict.p_value is None else round(verdict.p_value, 4),
            "winner": None if verdict.winner is None else variant_letter(verdict.winner),
        }


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """The two-sided p-value of a pooled two-proportion z-test (1.0 when it is undefined)."""
    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return 1.0
    z = (hits_a / n_a - hits_b / n_b) / spread
    return math.erfc(abs(z) / math.sqrt(2))


def judge(arms: list[Arm], *, metric: str) -> Verdict:
    """The verdict on `arms` by `metric` ("click rate" or "conversion rate")."""
    if len(arms) < 2:
        return Verdict("only one variant has been sent", metric)
    short = [a for a in arms if a.sent < MIN_SENT]
    if short:
        named = ", ".join(f"{a.letter} has {a.sent}" for a in short)
        return Verdict(f"not enough data yet: each variant needs {MIN_SENT} sent ({named})", metric)
    leader = max(arms, key=lambda a: (a.rate(metric), -a.number))
    others = [a for a in arms if a is not leader]
    p_value = max(
        min(1.0, two_proportion_p(*_hits(leader, metric), *_hits(a, metric)) * len(others))
        for a in others
    )
    rates = " vs ".join(f"{a.letter} {a.rate(metric):.1%}" for a in arms)
    test = f"two-proportion z-test on {metric}, p = {p_value:.3f}"
    if p_value < ALPHA:
        return Verdict(f"{leader.letter} wins ({rates}; {test})", metric, p_value, leader.number)
    return Verdict(f"no clear winner yet ({rates}; {test})", metric, p_value)


def _hits(arm: Arm, metric: str) -> tuple[int, int]:
    """(hits, sent) of `arm` by `metric`."""
    return (arm.clicks if metric == "click rate" else arm.conversions), arm.sent


def subject_tests(
    session: Session,
    catalog: SequenceCatalog,
    *,
    since: datetime | None = None,
    sequence: str | None = None,
) -> list[SubjectTest]:
    """Each step with a subject test (in its file, or recorded on sent rows), per variant."""
    scope: list[ColumnElement[bool]] = [
        Delivery.resend.is_(False),
        Delivery.status == DeliveryStatus.SENT,
        Delivery.subject_variant.is_not(None),
    ]
    if since is not None:
        scope.append(Delivery.created_at >= since)
    if sequence is not None:
        scope.append(Delivery.sequence_id == sequence)
    tests: dict[tuple[str, str], SubjectTest] = {}
    subjects: dict[tuple[str, str], tuple[str, ...]] = {}
    for loaded in catalog:
        definition = loaded.definition
        if sequence is not None and definition.id != sequence:
            continue
        metric = "click rate" if definition.track_clicks else "conversion rate"
        for step_def in definition.steps:
            if step_def.subject_variants:
                key = (definition.id, step_def.id)
                tests[key] = SubjectTest(definition.id, step_def.id, metric)
                subjects[key] = step_def.subject_variants
    counted: dict[tuple[str, str, int], list[int]] = {}

    def add(rows: Iterable[Any], column: int) -> None:
        for seq, step, number, count in rows:
            counted.setdefault((seq, step, number), [0, 0, 0])[column] += count

    group = (Delivery.sequence_id, Delivery.step_id, Delivery.subject_variant)
    add(session.execute(select(*group, func.count()).where(*scope).group_by(*group)), 0)
    add(
        session.execute(
            select(*group, func.count(func.distinct(Delivery.id)))
            .join(LinkClick, and_(LinkClick.delivery_id == Delivery.id, LinkClick.human))
            .where(*scope)
            .group_by(*group)
        ),
        1,
    )
    add(
        session.execute(
            select(*group, func.count())
            .join(
                Enrollment,
                and_(Enrollment.id == Delivery.enrollment_id, Enrollment.run == Delivery.run),
            )
            .where(*scope, Enrollment.status == EnrollmentStatus.CONVERTED)
            .group_by(*group)
        ),
        2,
    )
    for (seq, step, number), (sent, clicks, conversions) in counted.items():
        test = tests.setdefault((seq, step), SubjectTest(seq, step, "click rate"))
        texts = subjects.get((seq, step), ())
        subject = texts[number] if number < len(texts) else None
        test.arms.append(Arm(number, subject, sent, clicks, conversions))
    for key, test in tests.items():
        present = {a.number for a in test.arms}
        test.arms.extend(
            Arm(n, text, 0, 0, 0)
            for n, text in enumerate(subjects.get(key, ()))
            if n not in present
        )
        test.arms.sort(key=lambda a: a.number)
    return list(tests.values())
