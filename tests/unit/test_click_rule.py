"""The rule that tells a person's click from a machine's, case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drip.clicks.rule import MIN_SECONDS_AFTER_SEND, MachineReason, is_scanner, machine_reason

SENT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=2)
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.1 Safari/605.1.15"
)


def test_a_browser_get_well_after_the_send_is_a_person() -> None:
    assert machine_reason(method="GET", user_agent=BROWSER, clicked_at=LATER, sent_at=SENT) is None


def test_a_head_request_is_a_machine() -> None:
    assert (
        machine_reason(method="HEAD", user_agent=BROWSER, clicked_at=LATER, sent_at=SENT)
        is MachineReason.HEAD
    )


@pytest.mark.parametrize(
    "agent",
    [
        None,
        "",
        "   ",
        "Mozilla/5.0 (compatible; BarracudaCentral/1.0)",
        "Mimecast-URL-Protect",
        "Proofpoint URL Defense",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0",
        "python-requests/2.31",
        "curl/8.5.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ],
)
def test_a_known_scanner_or_a_missing_agent_is_a_machine(agent: str | None) -> None:
    assert is_scanner(agent)
    assert (
        machine_reason(method="GET", user_agent=agent, clicked_at=LATER, sent_at=SENT)
        is MachineReason.SCANNER
    )


def test_a_click_within_seconds_of_the_send_is_a_machine() -> None:
    assert MIN_SECONDS_AFTER_SEND == 10.0  # the documented window (README, Links)
    five = SENT + timedelta(seconds=5)
    assert (
        machine_reason(method="GET", user_agent=BROWSER, clicked_at=five, sent_at=SENT)
        is MachineReason.TOO_SOON
    )
    soon = SENT + timedelta(seconds=MIN_SECONDS_AFTER_SEND - 0.5)
    assert (
        machine_reason(method="GET", user_agent=BROWSER, clicked_at=soon, sent_at=SENT)
        is MachineReason.TOO_SOON
    )
    at_the_limit = SENT + timedelta(seconds=MIN_SECONDS_AFTER_SEND)
    assert (
        machine_reason(method="GET", user_agent=BROWSER, clicked_at=at_the_limit, sent_at=SENT)
        is None
    )


def test_the_first_reason_that_holds_is_the_one_given() -> None:
    assert (
        machine_reason(method="head", user_agent="curl/8", clicked_at=SENT, sent_at=SENT)
        is MachineReason.HEAD
    )
    assert (
        machine_reason(method="GET", user_agent="curl/8", clicked_at=SENT, sent_at=SENT)
        is MachineReason.SCANNER
    )


def test_browsers_are_not_taken_for_scanners() -> None:
    for agent in (
        BROWSER,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0.0.0 Safari/537.36 Edg/120.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
    ):
        assert not is_scanner(agent), agent
