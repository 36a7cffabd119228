"""An address's identity: normalised once, hashed with a key that a dictionary cannot guess."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest

from drip.config import Settings
from drip.contacts import identity
from drip.contacts.identity import (
    derive_hash_key,
    email_hash,
    keyed_digest,
    normalize_email,
    unkeyed_digest,
    use_hash_key,
)


@pytest.fixture(autouse=True)
def _restore_key() -> Iterator[None]:
    saved = identity._key
    yield
    identity._key = saved


def test_the_stored_hash_is_an_hmac_that_a_dictionary_of_addresses_does_not_reverse() -> None:
    # Given an attacker with a copy of the database and a list of addresses
    use_hash_key("k" * 43)
    stored = email_hash("ann@example.com")
    dictionary = {hashlib.sha256(a.encode()).hexdigest(): a for a in ["ann@example.com"]}
    # Then hashing the list without the key finds nothing
    assert stored not in dictionary
    assert (
        stored
        == hmac.new(
            b"k" * 43, hashlib.sha256(b"ann@example.com").hexdigest().encode(), hashlib.sha256
        ).hexdigest()
    )
    assert len(stored) == 64


def test_the_hash_depends_on_the_key_and_keys_the_digest_stored_before() -> None:
    use_hash_key("first key")
    first = email_hash("ann@example.com")
    use_hash_key("second key")
    assert email_hash("ann@example.com") != first
    # What migration 0006 computes from a stored digest is what the runtime computes
    assert keyed_digest(unkeyed_digest("ann@example.com"), key="second key") == email_hash(
        "ann@example.com"
    )


def test_the_key_defaults_to_one_derived_from_the_secret_key_and_never_to_it() -> None:
    settings = Settings(secret_key="s" * 40)
    assert settings.resolved_hash_key() == derive_hash_key("s" * 40)
    assert settings.resolved_hash_key() != "s" * 40
    assert Settings(secret_key="s" * 40, hash_key="pinned").resolved_hash_key() == "pinned"
    with pytest.raises(ValueError, match="DRIP_HASH_KEY"):
        use_hash_key("")


def test_addresses_are_normalised_before_hashing() -> None:
    assert normalize_email("  Ann@Example.COM ") == "ann@example.com"
    with pytest.raises(ValueError, match="@"):
        normalize_email("not an address")
