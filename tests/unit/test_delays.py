from datetime import timedelta

import pytest

from drip.errors import DelayError, DripError
from drip.sequences.delays import format_delay, parse_delay


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("45m", timedelta(minutes=45)),
        ("2d", timedelta(days=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w 2d", timedelta(days=9)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_delays_parse_as_sums_of_units(text: str, expected: timedelta) -> None:
    assert parse_delay(text) == expected


@pytest.mark.parametrize("text", ["", "2", "d", "2x", "-1d", "1.5d", "soon", "2d-", "99999w"])
def test_bad_delays_raise_a_delay_error_naming_the_text(text: str) -> None:
    with pytest.raises(DelayError) as caught:
        parse_delay(text)
    assert isinstance(caught.value, DripError)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("value", [None, 3, 2.5, ["1d"]])
def test_a_delay_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(DelayError, match="is a string"):
        parse_delay(value)


@pytest.mark.parametrize("text", ["0s", "45m", "1d12h", "1w2d", "3h5m7s"])
def test_format_is_the_inverse_of_parse(text: str) -> None:
    assert format_delay(parse_delay(text)) == text
