"""Next step and due time: send windows in the subscriber's zone, across DST changes."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from drip.schedule.planner import fit_window, next_step, plan_due
from drip.sequences.definition import SendWindow, Sequence

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
WEEKDAYS_8_TO_18 = SendWindow(days=("mon", "tue", "wed", "thu", "fri"), start=time(8), end=time(18))


def make_sequence(*step_ids: str, window: SendWindow | None = None) -> Sequence:
    return Sequence.model_validate(
        {
            "id": "s",
            "name": "S",
            "from": {"email": "a@example.com"},
            "layout": "l.html",
            "send_window": window.model_dump() if window else None,
            "steps": [
                {"id": i, "delay": "1d", "subject": "x", "template": "t.html"} for i in step_ids
            ],
        }
    )


def test_the_next_step_follows_the_last_received_in_file_order() -> None:
    sequence = make_sequence("a", "b", "c")
    assert next_step(sequence, set()).id == "a"  # type: ignore[union-attr]
    assert next_step(sequence, {"a"}).id == "b"  # type: ignore[union-attr]
    assert next_step(sequence, {"a", "b", "c"}) is None


def test_a_step_inserted_before_the_subscribers_position_is_not_sent() -> None:
    # Given someone who received a and b, and a new step x inserted between them
    edited = make_sequence("a", "x", "b", "c")
    assert next_step(edited, {"a", "b"}).id == "c"  # type: ignore[union-attr]


def test_a_step_inserted_after_the_position_is_sent_next() -> None:
    edited = make_sequence("a", "b", "x", "c")
    assert next_step(edited, {"a", "b"}).id == "x"  # type: ignore[union-attr]


def test_reordered_steps_skip_what_was_already_received() -> None:
    # c moved before b; someone who got a and c continues after c, with b not yet received
    edited = make_sequence("a", "c", "b")
    assert next_step(edited, {"a", "c"}).id == "b"  # type: ignore[union-attr]


def test_a_due_time_inside_the_window_is_kept() -> None:
    tuesday_10_local = datetime(2026, 6, 9, 14, 0, tzinfo=UTC)  # 10:00 EDT
    assert fit_window(tuesday_10_local, WEEKDAYS_8_TO_18, NEW_YORK) == tuesday_10_local


def test_a_friday_evening_moves_to_monday_morning_local_time() -> None:
    friday_20_local = datetime(2026, 6, 12, 0, 0, tzinfo=UTC)  # Thu 20:00 EDT
    assert fit_window(friday_20_local, WEEKDAYS_8_TO_18, NEW_YORK) == datetime(
        2026, 6, 12, 12, 0, tzinfo=UTC
    )
    saturday = datetime(2026, 6, 13, 15, 0, tzinfo=UTC)
    assert fit_window(saturday, WEEKDAYS_8_TO_18, NEW_YORK) == datetime(
        2026, 6, 15, 12, 0, tzinfo=UTC
    )


def test_no_window_means_any_time() -> None:
    moment = datetime(2026, 6, 13, 3, 0, tzinfo=UTC)
    assert fit_window(moment, None, NEW_YORK) == moment


@pytest.mark.parametrize(
    ("zone", "before", "after", "utc_before", "utc_after"),
    [
        # New York springs forward on 2026-03-08 and falls back on 2026-11-01
        (
            NEW_YORK,
            datetime(2026, 3, 6, 23, tzinfo=UTC),
            datetime(2026, 3, 9, 1, tzinfo=UTC),
            datetime(2026, 3, 9, 12, tzinfo=UTC),
            datetime(2026, 3, 9, 12, tzinfo=UTC),
        ),
        (
            NEW_YORK,
            datetime(2026, 10, 30, 23, tzinfo=UTC),
            datetime(2026, 11, 2, 1, tzinfo=UTC),
            datetime(2026, 11, 2, 13, tzinfo=UTC),
            datetime(2026, 11, 2, 13, tzinfo=UTC),
        ),
        # London springs forward on 2026-03-29 and falls back on 2026-10-25
        (
            LONDON,
            datetime(2026, 3, 27, 19, tzinfo=UTC),
            datetime(2026, 3, 30, 1, tzinfo=UTC),
            datetime(2026, 3, 30, 7, tzinfo=UTC),
            datetime(2026, 3, 30, 7, tzinfo=UTC),
        ),
        (
            LONDON,
            datetime(2026, 10, 23, 19, tzinfo=UTC),
            datetime(2026, 10, 26, 1, tzinfo=UTC),
            datetime(2026, 10, 26, 8, tzinfo=UTC),
            datetime(2026, 10, 26, 8, tzinfo=UTC),
        ),
    ],
)
def test_windows_open_at_eight_local_on_both_sides_of_dst_changes(
    zone: ZoneInfo, before: datetime, after: datetime, utc_before: datetime, utc_after: datetime
) -> None:
    # A Friday-evening due time, before the change, waits for Monday 08:00 local after it
    assert fit_window(before, WEEKDAYS_8_TO_18, zone) == utc_before
    assert fit_window(after, WEEKDAYS_8_TO_18, zone) == utc_after
    assert fit_window(before, WEEKDAYS_8_TO_18, zone).astimezone(zone).time() == time(8)


def test_a_window_opening_inside_the_spring_gap_is_taken_after_the_gap() -> None:
    window = SendWindow(days=("sun",), start=time(2, 30), end=time(6))
    sunday_before = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST, the night of the change
    due = fit_window(sunday_before, window, NEW_YORK)
    assert due.astimezone(NEW_YORK).time() == time(3, 30)


def test_a_delay_counts_from_the_actual_previous_send() -> None:
    sequence = make_sequence("a", "b")
    sent = datetime(2026, 6, 9, 14, 0, tzinfo=UTC)
    assert plan_due(sent, sequence.steps[1], sequence, NEW_YORK) == sent + timedelta(days=1)


def test_a_step_can_override_the_sequence_window_with_none() -> None:
    sequence = Sequence.model_validate(
        {
            "id": "s",
            "name": "S",
            "from": {"email": "a@example.com"},
            "layout": "l.html",
            "send_window": WEEKDAYS_8_TO_18.model_dump(),
            "steps": [
                {
                    "id": "now",
                    "delay": "0s",
                    "subject": "x",
                    "template": "t.html",
                    "send_window": None,
                },
                {"id": "later", "delay": "0s", "subject": "x", "template": "t.html"},
            ],
        }
    )
    saturday_night = datetime(2026, 6, 14, 3, 0, tzinfo=UTC)
    assert plan_due(saturday_night, sequence.steps[0], sequence, NEW_YORK) == saturday_night
    assert plan_due(saturday_night, sequence.steps[1], sequence, NEW_YORK) == datetime(
        2026, 6, 15, 12, tzinfo=UTC
    )


def test_a_window_opening_inside_the_repeated_autumn_hour_opens_at_its_first_occurrence() -> None:
    # New York falls back on Sunday 2026-11-01: 01:00-02:00 happens twice, first in EDT
    # (UTC-4), then in EST (UTC-5). A window opening at 01:30 opens at the first 01:30,
    # 01:30 EDT = 05:30 UTC (the second would be 01:30 EST = 06:30 UTC).
    window = SendWindow(days=("sun",), start=time(1, 30), end=time(6))
    sunday_midnight = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    due = fit_window(sunday_midnight, window, NEW_YORK)
    assert due == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert (due.astimezone(NEW_YORK).time(), due.astimezone(NEW_YORK).utcoffset()) == (
        time(1, 30),
        timedelta(hours=-4),
    )


def test_a_due_time_in_the_second_pass_of_the_repeated_hour_is_inside_the_window() -> None:
    # 06:15 UTC on 2026-11-01 is 01:15 EST, the second 01:15 of the night: the wall clock
    # reads before 01:30, but the window opened at the first 01:30 (05:30 UTC) and closes
    # at 06:00 EST (11:00 UTC), so the due time is kept, never moved back before itself.
    window = SendWindow(days=("sun",), start=time(1, 30), end=time(6))
    second_pass = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)
    assert fit_window(second_pass, window, NEW_YORK) == second_pass


def test_a_window_that_has_closed_on_the_autumn_sunday_waits_a_week() -> None:
    # 12:00 EST on Sunday 2026-11-01 (17:00 UTC) is past 06:00: the next Sunday opening is
    # 2026-11-08 01:30 EST (no change that night) = 06:30 UTC.
    window = SendWindow(days=("sun",), start=time(1, 30), end=time(6))
    noon = datetime(2026, 11, 1, 17, 0, tzinfo=UTC)
    assert fit_window(noon, window, NEW_YORK) == datetime(2026, 11, 8, 6, 30, tzinfo=UTC)
