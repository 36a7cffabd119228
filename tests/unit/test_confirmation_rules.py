"""Which confirmation token may confirm which request (`drip.signup.confirm`), by the clock."""

from datetime import UTC, datetime, timedelta

from drip.signup.confirm import CLOCK_SKEW, answers_open_request

REQUESTED = datetime(2026, 11, 30, 12, 0, 0, 400_000, tzinfo=UTC)


def test_the_email_answering_the_open_request_confirms_it() -> None:
    assert answers_open_request(
        REQUESTED + timedelta(seconds=2), requested_at=REQUESTED, stopped_at=None
    )


def test_no_open_request_means_nothing_to_confirm() -> None:
    assert not answers_open_request(REQUESTED, requested_at=None, stopped_at=None)


def test_a_token_of_an_earlier_request_is_refused() -> None:
    # Given a token made a day before the request now open (say, for a request since closed)
    issued = REQUESTED - timedelta(days=1)
    assert not answers_open_request(issued, requested_at=REQUESTED, stopped_at=None)


def test_a_worker_clock_slightly_behind_the_api_is_tolerated_up_to_the_skew() -> None:
    # Tokens carry whole seconds: one made in the request's own second reads as before it
    assert answers_open_request(
        REQUESTED.replace(microsecond=0), requested_at=REQUESTED, stopped_at=None
    )
    assert answers_open_request(REQUESTED - CLOCK_SKEW, requested_at=REQUESTED, stopped_at=None)
    assert not answers_open_request(
        REQUESTED - CLOCK_SKEW - timedelta(seconds=1), requested_at=REQUESTED, stopped_at=None
    )


def test_a_token_made_before_the_last_unsubscribe_is_refused_even_within_the_skew() -> None:
    # Given: token at 12:00:00, unsubscribe at 12:00:05, a new request at 12:00:10
    issued = REQUESTED.replace(microsecond=0)
    stopped = issued + timedelta(seconds=5)
    request = issued + timedelta(seconds=10)
    assert not answers_open_request(issued, requested_at=request, stopped_at=stopped)
    # A token made after it (in its very second or later) answers the new request
    assert answers_open_request(
        stopped.replace(microsecond=0), requested_at=request, stopped_at=stopped
    )
    assert answers_open_request(request, requested_at=request, stopped_at=stopped)
