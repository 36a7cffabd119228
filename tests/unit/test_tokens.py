import pytest

from drip.errors import BadToken
from drip.unsubscribe.tokens import Purpose, TokenSigner


def test_a_token_round_trips_and_reveals_only_an_opaque_id() -> None:
    signer = TokenSigner("secret")
    token = signer.sign("3f2a9c")
    assert signer.read(token) == "3f2a9c"
    assert "@" not in token


@pytest.mark.parametrize(
    "tamper", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: "x" + t, lambda t: ""]
)
def test_a_tampered_token_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    signer = TokenSigner("secret")
    with pytest.raises(BadToken):
        signer.read(tamper(signer.sign("3f2a9c")))


def test_a_token_from_another_key_or_purpose_is_refused() -> None:
    token = TokenSigner("secret").sign("3f2a9c", Purpose.DOWNLOAD)
    with pytest.raises(BadToken):
        TokenSigner("secret").read(token, Purpose.UNSUBSCRIBE)
    with pytest.raises(BadToken):
        TokenSigner("other").read(TokenSigner("secret").sign("3f2a9c"))
