"""Pure planning: the next step for a subscriber and its due time. No I/O, no clock.

The next step follows the brief's rule for live edits: steps are matched by id; a
subscriber continues with the first step of the current file that comes after the last
step they received and that they have not received. Steps inserted before their
position are therefore never sent to them.

A step is due `delay` after the previous email's actual send time (so an outage never
bunches emails together), then moved to the next opening of its send window in the
subscriber's zone.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from drip.sequences.definition import SendWindow, Sequence, Step

#: How far ahead a window opening is looked for: every weekday occurs within a week.
_SEARCH_DAYS = 8


def subscriber_zone(timezone: str | None, sequence: Sequence) -> ZoneInfo:
    """The zone a subscriber's emails are timed in: theirs when they gave one, else the
    sequence's."""
    return ZoneInfo(timezone or sequence.timezone)


#: The window the daily cap (DRIP_MAX_EMAILS_PER_DAY) counts a contact's emails in.
CAP_WINDOW = timedelta(days=1)


def cap_opens(sent: Collection[datetime], cap: int, at: datetime) -> datetime | None:
    """When the daily cap lets one more email go, for a contact whose emails went at `sent`:
    None when it allows one at `at`, else when the oldest email that fills it is a day old
    (the step is postponed to then, into its window; never dropped). A cap of 0 is none."""
    recent = sorted(t for t in sent if at - CAP_WINDOW < t <= at)
    if not cap or len(recent) < cap:
        return None
    return recent[len(recent) - cap] + CAP_WINDOW


def next_step(sequence: Sequence, received: Collection[str]) -> Step | None:
    """The step to send next to someone who has received the steps with ids in `received`."""
    position = max(
        (index for index, step in enumerate(sequence.steps) if step.id in received), default=-1
    )
    return next((s for s in sequence.steps[position + 1 :] if s.id not in received), None)


def plan_due(after: datetime, step: Step, sequence: Sequence, zone: ZoneInfo) -> datetime:
    """When `step` is due for a subscriber in `zone` whose previous email went at `after`."""
    return fit_window(after + step.delay, sequence.window_for(step), zone)


def fit_window(moment: datetime, window: SendWindow | None, zone: ZoneInfo) -> datetime:
    """`moment` if it falls inside `window` in `zone`, else the window's next opening (UTC)."""
    if moment.tzinfo is None:
        raise ValueError("fit_window needs an aware datetime")
    if window is None:
        return moment.astimezone(UTC)
    local = moment.astimezone(zone)
    open_days = {d.number for d in window.days}
    for offset in range(_SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in open_days:
            continue
        opens, closes = (
            _local_instant(day, window.start, zone),
            _local_instant(day, window.end, zone),
        )
        if moment < opens:
            return opens.astimezone(UTC)
        if moment < closes:
            return moment.astimezone(UTC)
    raise AssertionError("a window with at least one day always opens within a week")


def _local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant a local wall clock in `zone` shows `at` on `day`.

    A time skipped by a spring-forward change (02:30 in New York on the second Sunday of
    March) is taken as that wall time plus the gap, 03:30; a time repeated by an autumn
    change is taken at its first occurrence. Both follow zoneinfo's `fold=0`.
    """
    return datetime.combine(day, at, tzinfo=zone)
