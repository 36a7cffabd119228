"""An address's identity: the normalised form drip stores, and the keyed hash that finds it.

`contacts.email_hash` is the unique key of a contact: signups upsert on it, provider events
without a delivery find their contact by it, and it is all that remains of a forgotten
contact. An unsalted digest could be reversed by hashing a list of addresses, so the
stored value is keyed:

    email_hash = HMAC-SHA256(hash key, SHA-256 hex digest of the normalised address)

The inner digest is what drip stored before migration 0006, which keyed every stored value
this way without needing the addresses (a forgotten contact has none left to rehash).

The key is `DRIP_HASH_KEY`, or when unset one derived from `DRIP_SECRET_KEY`
(`derive_hash_key`). It is never rotated: a new key makes every stored hash unfindable, so a
forgotten or bounced address that signs up again would be taken for a stranger. Before
rotating the secret key, pin `DRIP_HASH_KEY` to the value derived from the old one
(docs/security.md). The runtime installs the key from its settings (`use_hash_key`); a
process that built no runtime (a migration, a script) reads it from the environment.
"""

from __future__ import annotations

import hashlib
import hmac

from email_validator import EmailNotValidError, validate_email

#: What the derived hash key is derived for: a key used for nothing else.
HASH_KEY_LABEL = b"drip.contacts.email_hash.v1"

_key: bytes | None = None


def normalize_email(address: str) -> str:
    """The address as stored and compared: validated, then lower-cased as a whole."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


def derive_hash_key(secret_key: str) -> str:
    """The hash key derived from a secret key, when `DRIP_HASH_KEY` is not set."""
    return hmac.new(secret_key.encode(), HASH_KEY_LABEL, hashlib.sha256).hexdigest()


def use_hash_key(key: str) -> None:
    """Hash addresses with `key` in this process from now on; an empty key is refused."""
    global _key
    if not key:
        raise ValueError("the address hash key is empty: set DRIP_HASH_KEY or DRIP_SECRET_KEY")
    _key = key.encode()


def unkeyed_digest(address: str) -> str:
    """SHA-256 hex digest of a normalised address: the inner layer of `email_hash`."""
    return hashlib.sha256(address.encode()).hexdigest()


def keyed_digest(digest: str, *, key: str) -> str:
    """HMAC-SHA256 of an unkeyed digest under `key` (migration 0006 applies it to stored rows)."""
    return hmac.new(key.encode(), digest.encode(), hashlib.sha256).hexdigest()


def email_hash(address: str) -> str:
    """The stored identity of a normalised address, keyed with this process's hash key."""
    digest = unkeyed_digest(address)
    return hmac.new(_active_key(), digest.encode(), hashlib.sha256).hexdigest()


def _active_key() -> bytes:
    if _key is None:
        # No runtime was built: read the key as the runtime would, from the environment.
        from drip.config import Settings

        use_hash_key(Settings().resolved_hash_key())
    assert _key is not None
    return _key
