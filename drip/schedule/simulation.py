"""Simulate a sequence for one subscriber: when each step would arrive, windows and DST applied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from drip.schedule.planner import plan_due
from drip.sequences.definition import SendWindow, Sequence, Step
from drip.sequences.delays import format_delay


@dataclass(frozen=True)
class SimulatedSend:
    number: int
    step_id: str
    delay: str
    window: str
    due_utc: datetime
    due_local: datetime
    subject: str

    def as_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "step": self.step_id,
            "delay": self.delay,
            "window": self.window,
            "utc": self.due_utc.isoformat(),
            "local": self.due_local.isoformat(),
            "subject": self.subject,
        }


def describe_window(window: SendWindow | None) -> str:
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
) -> list[SimulatedSend]:
    """Every step's send time, each email assumed sent the moment it falls due."""
    sends, after = [], signup_at
    for number, step in enumerate(sequence.steps, 1):
        due = plan_due(after, step, sequence, zone)
        sends.append(
            SimulatedSend(
                number,
                step.id,
                format_delay(step.delay),
                describe_window(sequence.window_for(step)),
                due,
                due.astimezone(zone),
                subject(step),
            )
        )
        after = due
    return sends
