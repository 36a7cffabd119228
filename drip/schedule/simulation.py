"""Simulate a sequence for one subscriber: when each step would arrive, windows and DST
applied, and what the subscriber's events and attributes do to it.

It follows the worker's rules: a step whose `when:` is false at its due time is skipped
(the next delay still counts from the last email sent), and a goal event (`exit:`) ends
the run at the first step due after it. Events and downloads are given as times; the
subscriber is assumed to open nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from drip.render.variants import each_variant
from drip.schedule.planner import cap_opens, fit_window, plan_due
from drip.sequences.conditions import ConditionError, ContactView, Situation, evaluate
from drip.sequences.definition import EVENT_NAME_PATTERN, SendWindow, Sequence, Step
from drip.sequences.delays import format_delay, parse_delay


@dataclass(frozen=True)
class SimulatedSend:
    """One step as the simulated subscriber meets it: sent, skipped, or ended by a goal."""

    number: int
    step_id: str
    delay: str
    window: str
    due_utc: datetime
    due_local: datetime
    subject: str
    outcome: str = "sent"
    note: str = ""
    #: Each variant's subject, "A: ...", when the step runs a subject test.
    subject_variants: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The send as JSON-ready values."""
        return {
            "number": self.number,
            "step": self.step_id,
            "delay": self.delay,
            "window": self.window,
            "utc": self.due_utc.isoformat(),
            "local": self.due_local.isoformat(),
            "subject": self.subject,
            "outcome": self.outcome,
            "note": self.note,
            "subject_variants": list(self.subject_variants),
        }


@dataclass(frozen=True)
class Subscriber:
    """What the simulated subscriber does: events (name, when), when it downloads the
    sequence's file, and its attributes."""

    events: tuple[tuple[str, datetime], ...] = ()
    downloaded_at: datetime | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    first_name: str | None = None


def describe_window(window: SendWindow | None) -> str:
    """A send window as `simulate` prints it: its days and hours, or "any time"."""
    if window is None:
        return "any time"
    days = ",".join(d.value for d in window.days)
    return f"{days} {window.start:%H:%M}-{window.end:%H:%M}"


def simulate(
    sequence: Sequence,
    *,
    signup_at: datetime,
    zone: ZoneInfo,
    subject: Callable[[Step], str] = lambda step: step.subject,
    subscriber: Subscriber = Subscriber(),
    daily_cap: int = 0,
) -> list[SimulatedSend]:
    """Every step's send time, each email assumed sent the moment it falls due (or when the
    daily cap lets it go: postponed into its window, as the worker does)."""
    sends: list[SimulatedSend] = []
    sent: list[datetime] = []
    last_sent = clock = signup_at
    for number, step in enumerate(sequence.steps, 1):
        # Planned from the last email sent, but never before the previous step was handled:
        # a step planned in the past (after a skipped one) goes at once.
        due = max(plan_due(last_sent, step, sequence, zone), clock)
        clock = due
        goal = next(
            (
                name
                for name, at in sorted(subscriber.events, key=lambda e: e[1])
                if name in sequence.goals and signup_at <= at <= due
            ),
            None,
        )
        outcome, note = "sent", ""
        if goal is not None:
            outcome, note = "ends", f"goal reached: {goal}"
        elif step.when is not None and not _holds(step.when, subscriber, due):
            outcome, note = "skipped", f"when: {step.when} is false"
        elif (opens := cap_opens(sent, daily_cap, due)) is not None:
            was, due = due, fit_window(opens, sequence.window_for(step), zone)
            clock, note = (
                due,
                f"postponed by the daily cap of {daily_cap} from {was:%Y-%m-%d %H:%M} UTC",
            )
        sends.append(
            SimulatedSend(
                number,
                step.id,
                format_delay(step.delay),
                describe_window(sequence.window_for(step)),
                due,
                due.astimezone(zone),
                subject(step),
                outcome,
                note,
                tuple(f"{letter}: {subject(v)}" for letter, v in each_variant(step) if letter),
            )
        )
        if outcome == "ends":
            break
        if outcome == "sent":
            last_sent = due
            sent.append(due)
    return sends


def _holds(source: str, subscriber: Subscriber, at: datetime) -> bool:
    """The condition at `at`, with the events and download that happened by then."""
    situation = Situation(
        ContactView(subscriber.first_name, None, dict(subscriber.attributes)),
        tuple((name, when) for name, when in subscriber.events if when <= at),
        subscriber.downloaded_at is not None and subscriber.downloaded_at <= at,
    )
    try:
        return evaluate(source, situation, now=at)
    except ConditionError:
        return False


def subscriber_from_options(
    signup_at: datetime, events: list[str], attributes: list[str], downloaded: str | None
) -> Subscriber:
    """A simulated subscriber from `--event NAME@OFFSET`, `--attribute KEY=VALUE` (a JSON
    value, else the text) and `--downloaded OFFSET`; ValueError names the bad one."""
    parsed_events = []
    for text in events:
        name, at, offset = text.partition("@")
        if not at or not re.fullmatch(EVENT_NAME_PATTERN, name):
            raise ValueError(f"--event {text!r}: write NAME@OFFSET, such as purchased@5d")
        parsed_events.append((name, signup_at + _offset("--event", offset)))
    parsed_attributes: dict[str, object] = {}
    for text in attributes:
        key, equals, raw = text.partition("=")
        if not equals or not key:
            raise ValueError(f"--attribute {text!r}: write KEY=VALUE, such as years=12")
        try:
            parsed_attributes[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed_attributes[key] = raw
    fetched = signup_at + _offset("--downloaded", downloaded) if downloaded else None
    return Subscriber(tuple(parsed_events), fetched, parsed_attributes)


def _offset(option: str, text: str) -> timedelta:
    try:
        return parse_delay(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from exc
