"""Link tokens: each kind opens only what it was made for, confirmations expire, and a
rotated key keeps old links working."""

import uuid
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeSerializer

from drip.errors import BadToken
from drip.unsubscribe.tokens import ExpiredToken, Purpose, TokenSigner

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()
DAY = 86400.0


def test_a_token_round_trips_and_reveals_only_an_opaque_id() -> None:
    signer = TokenSigner("secret")
    token = signer.sign("3f2a9c")
    assert signer.read(token) == "3f2a9c"
    assert "@" not in token


@pytest.mark.parametrize(
    "tamper",
    [
        # Inside the signature: its last character also carries padding bits, which decode
        # the same whatever they hold.
        lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],
        lambda t: "x" + t,
        lambda t: "",
    ],
)
def test_a_tampered_token_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    signer = TokenSigner("secret")
    with pytest.raises(BadToken):
        signer.read(tamper(signer.sign("3f2a9c")))
    with pytest.raises(BadToken):
        signer.read_download(tamper(signer.sign_download("3f2a9c", "a")))
    with pytest.raises(BadToken) as caught:
        signer.read_confirm(tamper(signer.sign_confirm("3f2a9c", "a")), max_age=DAY)
    assert not isinstance(caught.value, ExpiredToken)


def test_a_token_from_another_key_or_purpose_is_refused() -> None:
    signer = TokenSigner("secret")
    with pytest.raises(BadToken):
        signer.read(signer.sign_download("3f2a9c", "a"), Purpose.UNSUBSCRIBE)
    with pytest.raises(BadToken):
        signer.read_download(signer.sign("3f2a9c"))
    with pytest.raises(BadToken):
        signer.read_confirm(signer.sign_download("3f2a9c", "a"), max_age=DAY)
    with pytest.raises(BadToken):
        TokenSigner("other").read(signer.sign("3f2a9c"))


def test_a_download_token_names_its_sequence() -> None:
    signer = TokenSigner("secret")
    claim = signer.read_download(signer.sign_download("3f2a9c", "executive-resume"))
    assert (claim.public_id, claim.sequence_id) == ("3f2a9c", "executive-resume")
    assert signer.sign_download("3f2a9c", "a") != signer.sign_download("3f2a9c", "b")


def test_a_download_link_made_before_binding_reads_as_unbound() -> None:
    # Given a link sent before downloads were bound: the public id alone, same key and salt
    old = URLSafeSerializer(["secret"], salt=Purpose.DOWNLOAD.value).dumps("3f2a9c")
    claim = TokenSigner("secret").read_download(old)
    # Then it names no sequence: the endpoint accepts it only where the contact is enrolled
    assert (claim.public_id, claim.sequence_id) == ("3f2a9c", None)


def test_a_confirmation_names_contact_sequence_and_time_and_expires() -> None:
    clock = [NOW]
    signer = TokenSigner("secret", clock=lambda: clock[0])
    token = signer.sign_confirm("3f2a9c", "executive-resume")
    clock[0] = NOW + DAY
    claim = signer.read_confirm(token, max_age=DAY)
    assert (claim.public_id, claim.sequence_id) == ("3f2a9c", "executive-resume")
    assert claim.issued_at == datetime.fromtimestamp(NOW, UTC)
    # One second past its lifetime it is expired, which the pages tell from "not valid"
    clock[0] = NOW + DAY + 1
    with pytest.raises(ExpiredToken):
        signer.read_confirm(token, max_age=DAY)


def test_confirmations_differ_per_sequence_and_per_request_time() -> None:
    clock = [NOW]
    signer = TokenSigner("secret", clock=lambda: clock[0])
    first = signer.sign_confirm("3f2a9c", "a")
    assert signer.sign_confirm("3f2a9c", "b") != first
    clock[0] = NOW + 3600
    assert signer.sign_confirm("3f2a9c", "a") != first


def test_signing_a_bound_kind_as_plain_is_refused() -> None:
    with pytest.raises(ValueError, match="sign_download"):
        TokenSigner("secret").sign("3f2a9c", Purpose.DOWNLOAD)


def test_after_a_key_rotation_every_kind_of_old_link_still_verifies() -> None:
    # Given links made with the old key
    clock = [NOW]
    old = TokenSigner("old-key", clock=lambda: clock[0])
    unsubscribe = old.sign("3f2a9c")
    download = old.sign_download("3f2a9c", "a")
    confirm = old.sign_confirm("3f2a9c", "a")
    # When the key is rotated with the old one kept as a fallback
    rotated = TokenSigner("new-key", ["older-key", "old-key"], clock=lambda: clock[0])
    # Then each old link still opens what it opened
    assert rotated.read(unsubscribe) == "3f2a9c"
    assert rotated.read_download(download).sequence_id == "a"
    assert rotated.read_confirm(confirm, max_age=DAY).public_id == "3f2a9c"
    # And new links are signed with the new key alone: a signer without fallbacks reads them
    fresh = rotated.sign("3f2a9c")
    assert TokenSigner("new-key").read(fresh) == "3f2a9c"
    with pytest.raises(BadToken):
        TokenSigner("old-key").read(fresh)
    # And once the old key is dropped, its links stop verifying
    with pytest.raises(BadToken):
        TokenSigner("new-key").read(unsubscribe)


def test_a_contacts_links_are_the_tokens_itsdangerous_makes() -> None:
    # A random public id never compresses: the token is the one plain itsdangerous makes
    public_id = uuid.uuid4().hex
    signer = TokenSigner("secret")
    plain = {p: URLSafeSerializer(["secret"], salt=p.value) for p in Purpose}
    assert signer.sign(public_id) == plain[Purpose.UNSUBSCRIBE].dumps(public_id)
    assert signer.sign_download(public_id, "executive-resume") == plain[Purpose.DOWNLOAD].dumps(
        [public_id, "executive-resume"]
    )


def test_a_long_payload_is_still_compressed_and_any_token_reads() -> None:
    signer = TokenSigner("secret")
    url = "https://example.com/guides/" + "resume-" * 40
    token = signer.sign_click(7, 0, url)
    assert token.startswith(".")  # compressed: the tracked link stays short
    assert len(token) < len(url)
    assert (signer.read_click(token).delivery_id, signer.read_click(token).url) == (7, url)
    # A short payload itsdangerous did compress (sent before) still reads
    old = URLSafeSerializer(["secret"], salt=Purpose.UNSUBSCRIBE.value).dumps("a" * 60)
    assert old.startswith(".")
    assert signer.read(old) == "a" * 60
